package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenMigratesFromEmpty(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v != LatestSchemaVersion() || v == 0 {
		t.Fatalf("schema version %d, want %d", v, LatestSchemaVersion())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("database mode %v, want 0600", fi.Mode().Perm())
	}
	var mode string
	if err := s.r.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q, %v", mode, err)
	}
	for _, db := range []*sql.DB{s.r, s.w} {
		var fk, busy int
		if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
			t.Fatalf("foreign_keys %d, %v", fk, err)
		}
		if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != int(busyTimeout.Milliseconds()) {
			t.Fatalf("busy_timeout %d, %v", busy, err)
		}
	}
	// The read pool must not write.
	if _, err := s.r.ExecContext(ctx, "DELETE FROM events"); err == nil {
		t.Fatal("the read pool accepted a write")
	}
}

func TestOpenTightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("empty path: %v", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "state.db")); err == nil {
		t.Fatal("a database in a missing directory opened")
	}
	// Not a database.
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not sqlite ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil {
		t.Fatal("a junk file opened as a database")
	}
}

func TestOpenOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c%20d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not where asked: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Fatalf("stray files next to the directory: %v", entries)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSandbox(ctx, Sandbox{UUID: "u1", Name: "one", Status: "running"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvent(ctx, Event{SandboxUUID: "u1", SandboxName: "one", Event: "sandbox_created"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if sb, err := s.GetSandbox(ctx, "one"); err != nil || sb.UUID != "u1" {
		t.Fatalf("after reopen: %+v, %v", sb, err)
	}
	if evs, err := s.ListEvents(ctx, "u1", 0); err != nil || len(evs) != 1 {
		t.Fatalf("events after reopen: %v, %v", evs, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec(fmt.Sprintf("PRAGMA user_version = %d", LatestSchemaVersion()+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(path)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "newer agentkernel") {
		t.Fatalf("opening a newer schema: %v", err)
	}
}

func TestMigrationIsAtomic(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	steps := append([]string{}, migrations...)
	steps = append(steps, `CREATE TABLE extra (x INTEGER); INSERT INTO nosuchtable VALUES (1);`)
	if err := migrateTo(ctx, s.w, steps); err == nil {
		t.Fatal("a failing migration succeeded")
	}
	if v, _ := s.SchemaVersion(ctx); v != len(migrations) {
		t.Fatalf("version %d after a failed migration, want %d", v, len(migrations))
	}
	var n int
	if err := s.w.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'extra'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("a failed migration left its table behind (%d, %v)", n, err)
	}
	// A good next step applies once, and re-running is a no-op.
	steps[len(steps)-1] = `CREATE TABLE extra (x INTEGER);`
	for i := 0; i < 2; i++ {
		if err := migrateTo(ctx, s.w, steps); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	if v, _ := s.SchemaVersion(ctx); v != len(steps) {
		t.Fatalf("version %d, want %d", v, len(steps))
	}
}

func TestCloseIdempotent(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.ListSandboxes(context.Background()); err == nil {
		t.Fatal("a closed store answered")
	}
}

// TestOpenDamaged: a file that is not a database, or one whose pages are
// damaged, is refused at Open with an error that says it is corrupt and
// what to do, not later at some query.
func TestOpenDamaged(t *testing.T) {
	for _, how := range []string{"header", "pages"} {
		t.Run(how, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			s, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for i := 0; i < 200; i++ {
				if _, err := s.CreateSandbox(ctx, Sandbox{UUID: fmt.Sprintf("u-%03d", i), Name: fmt.Sprintf("n-%03d", i), Status: "running", Backend: "container", Image: "host", Spec: []byte("{}")}); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			b, err := os.ReadFile(p)
			if err != nil || len(b) < 3*4096 {
				t.Fatalf("database: %d bytes, %v", len(b), err)
			}
			if how == "header" {
				copy(b, bytes.Repeat([]byte{'Z'}, 100))
			} else {
				for i := 4096; i < len(b); i++ {
					b[i] = byte(i * 7)
				}
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Open(p)
			if err == nil || !IsDamaged(err) || !strings.Contains(err.Error(), "is corrupt") || !strings.Contains(err.Error(), "restore it from a backup") {
				t.Fatalf("Open of a damaged file: %v", err)
			}
		})
	}
}
