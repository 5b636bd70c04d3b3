package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// busyTimeout is how long a statement waits for another process's write lock
// before failing. Inside one Store writes never wait on each other in SQLite
// (see Store), so this only matters if a second process opens the file.
const busyTimeout = 10 * time.Second

// readConns bounds the read pool.
const readConns = 4

// Store is an open database. Open creates it; Close releases it. All methods
// are safe for concurrent use.
//
// A Store owns two database/sql pools on the same file: w, a single
// connection that every write and every migration goes through, so writers
// queue in Go instead of failing with SQLITE_BUSY; and r, a few query-only
// connections for reads, which WAL mode lets run while w writes.
type Store struct {
	path string
	w    *sql.DB
	r    *sql.DB

	// now is the clock; tests replace it before use.
	now func() time.Time
	// eventsKeep is how many events AppendEvent keeps per sandbox.
	eventsKeep int

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the database at path, a file in an
// existing directory, and migrates it to the schema this binary knows. The
// file is made 0600. A database written by a newer agentkernel (a higher
// schema version) is refused with ErrFailedPrecondition, untouched.
func Open(path string) (retS *Store, retErr error) {
	if path == "" {
		return nil, fmt.Errorf("opening the store: empty path: %w", errdefs.ErrInvalidArgument)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the store %s: %w", path, err)
	}
	f.Close()
	// Tighten a file that existed with a looser mode; SQLite gives the -wal
	// and -shm files the database file's mode.
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("opening the store %s: %w", path, err)
	}

	s := &Store{path: path, now: time.Now, eventsKeep: DefaultEventsPerSandbox}
	defer func() {
		if retErr != nil {
			s.Close()
		}
	}()

	base := "file:" + escapePath(path) +
		fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=foreign_keys(1)", busyTimeout.Milliseconds())
	// _txlock=immediate takes the write lock at BEGIN, so a transaction
	// never has to upgrade a read lock (which fails at once with SQLITE_BUSY
	// when another process wrote in between, busy_timeout or not).
	s.w, err = openDB(base + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return nil, damagedOr(path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxIdleTime(0)
	s.w.SetConnMaxLifetime(0)

	ctx := context.Background()
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, damagedOr(path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("opening the store %s: journal mode is %q, not WAL", path, mode)
	}
	// A damaged file is refused here, with what to do, rather than
	// failing later at some query as "database disk image is malformed".
	var check string
	if err := s.w.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&check); err != nil {
		return nil, damagedOr(path, err)
	} else if check != "ok" {
		return nil, damagedOr(path, fmt.Errorf("%w: integrity check: %s", errDamagedFile, strings.Join(strings.Fields(check), " ")))
	}
	if err := migrate(ctx, s.w); err != nil {
		return nil, damagedOr(path, err)
	}

	s.r, err = openDB(base + "&_pragma=query_only(1)")
	if err != nil {
		return nil, fmt.Errorf("opening the store %s: %w", path, err)
	}
	s.r.SetMaxOpenConns(readConns)
	s.r.SetMaxIdleConns(readConns)
	return s, nil
}

func openDB(dsn string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// escapePath makes a file path safe inside a SQLite "file:" URI, whose path
// part is percent-decoded and ends at '?' or '#'.
func escapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '%', '?', '#':
			fmt.Fprintf(&b, "%%%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the database. It is idempotent; later calls return the first
// call's result. Methods called after Close fail.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		if s.w != nil {
			errs = append(errs, s.w.Close())
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// SchemaVersion returns the database's schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("reading the schema version: %w", err)
	}
	return v, nil
}

// withTx runs fn in a write transaction and commits it if fn succeeds.
func (s *Store) withTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// errDamagedFile marks an integrity check that found damage.
var errDamagedFile = errors.New("the file is damaged")

// IsDamaged reports whether err says the database file is damaged: not a
// database at all (SQLITE_NOTADB), or corrupt (SQLITE_CORRUPT, or an
// integrity check that found damage).
func IsDamaged(err error) bool {
	c := sqliteCode(err) & 0xff
	return c == sqlite3.SQLITE_CORRUPT || c == sqlite3.SQLITE_NOTADB || errors.Is(err, errDamagedFile)
}

// damagedOr wraps an error of Open: a damaged file gets what to do about
// it (the daemon then refuses to start, leaving running sandboxes alone).
func damagedOr(path string, err error) error {
	if IsDamaged(err) {
		return fmt.Errorf("%w: the store %s is corrupt (%w): restore it from a backup, or move it aside to start with an empty one "+
			"(sandboxes that run are left running, but an empty store does not know them)", errdefs.ErrFailedPrecondition, path, err)
	}
	return fmt.Errorf("opening the store %s: %w", path, err)
}

// sqliteCode returns the extended SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}

func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKey(err error) bool {
	return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// Times are stored as Unix nanoseconds (exact, and ordered as integers).

func toNS(t time.Time) int64 { return t.UnixNano() }

func fromNS(n int64) time.Time { return time.Unix(0, n).UTC() }

func toNullNS(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromNullNS(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNS(n.Int64)
	return &t
}

// checkLen refuses a field longer than max bytes.
func checkLen(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%s is %d bytes, more than %d: %w", field, len(v), max, errdefs.ErrInvalidArgument)
	}
	return nil
}
