package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// DefaultEventsPerSandbox is how many events AppendEvent keeps per sandbox;
// older ones are dropped as new ones arrive.
const DefaultEventsPerSandbox = 10000

// maxDetails bounds an event's details JSON.
const maxDetails = 64 << 10

// Event is one entry of a sandbox's audit trail.
type Event struct {
	ID          int64
	SandboxUUID string
	SandboxName string
	Time        time.Time
	Event       string
	// Details is a JSON object, or empty.
	Details json.RawMessage
}

// AppendEvent records ev. Time defaults to now; ID is assigned. It does not
// require the sandbox to exist (a removal is itself an event). It returns
// the event as stored.
func (s *Store) AppendEvent(ctx context.Context, ev Event) (Event, error) {
	if ev.SandboxUUID == "" || ev.Event == "" {
		return Event{}, fmt.Errorf("recording an event: sandbox uuid and event are required: %w", errdefs.ErrInvalidArgument)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"sandbox uuid", ev.SandboxUUID, maxShort}, {"sandbox name", ev.SandboxName, maxName}, {"event", ev.Event, maxShort}} {
		if err := checkLen(f.name, f.v, f.max); err != nil {
			return Event{}, fmt.Errorf("recording event %q: %w", ev.Event, err)
		}
	}
	var details sql.NullString
	if len(ev.Details) > 0 {
		if len(ev.Details) > maxDetails || !json.Valid(ev.Details) {
			return Event{}, fmt.Errorf("recording event %q: details are not valid JSON of at most %d bytes: %w",
				ev.Event, maxDetails, errdefs.ErrInvalidArgument)
		}
		details = sql.NullString{String: string(ev.Details), Valid: true}
	}
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	ev.Time = ev.Time.UTC()
	err := s.withTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO events (sandbox_uuid, sandbox_name, time, event, details)
			VALUES (?, ?, ?, ?, ?)`, ev.SandboxUUID, ev.SandboxName, toNS(ev.Time), ev.Event, details)
		if err != nil {
			return err
		}
		if ev.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		// Keep the newest eventsKeep rows of this sandbox.
		_, err = tx.ExecContext(ctx, `DELETE FROM events WHERE sandbox_uuid = ?1 AND id <= (
				SELECT id FROM events WHERE sandbox_uuid = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)`,
			ev.SandboxUUID, s.eventsKeep)
		return err
	})
	if err != nil {
		return Event{}, fmt.Errorf("recording event %q for sandbox %s: %w", ev.Event, ev.SandboxUUID, err)
	}
	return ev, nil
}

// ListEvents returns a sandbox's newest limit events (all kept ones if
// limit <= 0), oldest first.
func (s *Store) ListEvents(ctx context.Context, sandboxUUID string, limit int) ([]Event, error) {
	if limit <= 0 || limit > s.eventsKeep {
		limit = s.eventsKeep
	}
	out, err := s.queryEvents(ctx, `SELECT id, sandbox_uuid, sandbox_name, time, event, details FROM (
			SELECT * FROM events WHERE sandbox_uuid = ? ORDER BY id DESC LIMIT ?
		) ORDER BY id`, sandboxUUID, limit)
	if err != nil {
		return nil, fmt.Errorf("listing events of sandbox %s: %w", sandboxUUID, err)
	}
	return out, nil
}

// MaxEventsPage bounds one ListEventsAfter.
const MaxEventsPage = 1000

// ListEventsAfter returns the events of every sandbox with an ID above
// after, oldest first, at most limit (MaxEventsPage if limit <= 0 or
// more): the history a reconnecting /events client resumes from. IDs only
// grow, so "above after" is exactly what it missed, as far as the history
// (DefaultEventsPerSandbox per sandbox, EventRetention) reaches.
func (s *Store) ListEventsAfter(ctx context.Context, after int64, limit int) ([]Event, error) {
	if limit <= 0 || limit > MaxEventsPage {
		limit = MaxEventsPage
	}
	out, err := s.queryEvents(ctx, `SELECT id, sandbox_uuid, sandbox_name, time, event, details FROM events
		WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing events after %d: %w", after, err)
	}
	return out, nil
}

// LastEventID is the ID of the newest event, 0 when there is none.
func (s *Store) LastEventID(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := s.r.QueryRowContext(ctx, `SELECT MAX(id) FROM events`).Scan(&id); err != nil {
		return 0, fmt.Errorf("reading the last event id: %w", err)
	}
	return id.Int64, nil
}

func (s *Store) queryEvents(ctx context.Context, q string, args ...any) ([]Event, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			ev      Event
			t       int64
			details sql.NullString
		)
		if err := rows.Scan(&ev.ID, &ev.SandboxUUID, &ev.SandboxName, &t, &ev.Event, &details); err != nil {
			return nil, err
		}
		ev.Time = fromNS(t)
		if details.Valid {
			ev.Details = json.RawMessage(details.String)
		}
		out = append(out, ev)
	}
	return out, rows.Err()
}

// DeleteEventsBefore drops every event older than t, of any sandbox, and
// returns how many went. The daemon calls it to bound the audit trail of
// sandboxes that no longer exist.
func (s *Store) DeleteEventsBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM events WHERE time < ?`, toNS(t))
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("pruning events: %w", err)
	}
	return n, nil
}
