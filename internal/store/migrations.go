package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// migrations is the schema's history: migrations[i] takes the database from
// version i to i+1 (the version lives in PRAGMA user_version). Append only;
// never edit an entry that has shipped.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE sandboxes (
	uuid       TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE,
	status     TEXT NOT NULL,
	backend    TEXT NOT NULL DEFAULT '',
	image      TEXT NOT NULL DEFAULT '',
	profile    TEXT NOT NULL DEFAULT '',
	spec       TEXT NOT NULL DEFAULT '{}',
	vcpus      INTEGER NOT NULL DEFAULT 0,
	memory_mb  INTEGER NOT NULL DEFAULT 0,
	labels     TEXT NOT NULL DEFAULT '{}',
	ephemeral  INTEGER NOT NULL DEFAULT 0,
	error      TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	expires_at INTEGER,
	started_at INTEGER
) STRICT;
CREATE INDEX sandboxes_expires_at ON sandboxes(expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE events (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	sandbox_uuid TEXT NOT NULL,
	sandbox_name TEXT NOT NULL,
	time         INTEGER NOT NULL,
	event        TEXT NOT NULL,
	details      TEXT
) STRICT;
CREATE INDEX events_sandbox ON events(sandbox_uuid, id);
CREATE INDEX events_time ON events(time);

CREATE TABLE detached (
	id           TEXT PRIMARY KEY,
	sandbox_uuid TEXT NOT NULL REFERENCES sandboxes(uuid) ON DELETE CASCADE,
	agent_id     TEXT NOT NULL,
	command      TEXT NOT NULL,
	pid          INTEGER NOT NULL DEFAULT 0,
	started_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX detached_sandbox ON detached(sandbox_uuid, started_at);

CREATE TABLE images (
	name       TEXT PRIMARY KEY,
	id         TEXT NOT NULL,
	source     TEXT NOT NULL DEFAULT '',
	size       INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	meta       TEXT NOT NULL DEFAULT '{}'
) STRICT;
`,
	// 2: detached commands are the agent's to remember (they survive
	// daemon restarts there) and images the image store's; neither table
	// was ever written.
	`
DROP TABLE detached;
DROP TABLE images;
`,
	// 3: warm pools. A row whose pool is not empty is a pooled sandbox:
	// started, never handed to a caller, invisible to lists and lookups
	// by name until a claim clears the column.
	`
ALTER TABLE sandboxes ADD COLUMN pool TEXT NOT NULL DEFAULT '';
`,
}

// LatestSchemaVersion is the schema version this binary writes.
func LatestSchemaVersion() int { return len(migrations) }

// migrate brings db to the latest schema, one transaction per migration.
// Each transaction re-reads the version after taking the write lock, so two
// processes opening the same file at once cannot apply a migration twice.
func migrate(ctx context.Context, db *sql.DB) error {
	return migrateTo(ctx, db, migrations)
}

func migrateTo(ctx context.Context, db *sql.DB, steps []string) error {
	for i, step := range steps {
		target := i + 1
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrating to schema %d: %w", target, err)
		}
		var cur int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
			tx.Rollback()
			return fmt.Errorf("reading the schema version: %w", err)
		}
		if cur > len(steps) {
			tx.Rollback()
			return fmt.Errorf("the database has schema version %d but this agentkernel knows only up to %d; use a newer agentkernel: %w",
				cur, len(steps), errdefs.ErrFailedPrecondition)
		}
		if cur >= target {
			tx.Rollback()
			continue
		}
		if _, err := tx.ExecContext(ctx, step); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrating to schema %d: %w", target, err)
		}
		// PRAGMA takes no bound parameters; target is an int we control.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", target)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrating to schema %d: %w", target, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrating to schema %d: %w", target, err)
		}
	}
	return nil
}
