// Package store is the daemon's embedded database: one SQLite file (pure Go,
// modernc.org/sqlite) holding sandboxes, their audit events, detached
// commands and images, with ordered migrations.
//
// Only the daemon process opens the store. A *Store is safe for concurrent
// use by many goroutines: writes go through a single connection (SQLite
// allows one writer at a time, so queueing them in database/sql rather than
// in SQLite's busy handler means writers never see "database is locked"),
// reads go through a small pool that WAL mode lets run beside the writer.
//
// Errors are classified with pkg/errdefs: a missing row is ErrNotFound, a
// duplicate name ErrAlreadyExists, malformed input ErrInvalidArgument, and a
// database written by a newer agentkernel ErrFailedPrecondition.
//
// Times are stored as Unix nanoseconds and come back in UTC.
package store
