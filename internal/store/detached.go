package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// maxCommand bounds a detached command's argv as JSON.
const maxCommand = 256 << 10

// Detached is a background command started in a sandbox, recorded so that
// listings survive a daemon restart. Rows go with their sandbox.
type Detached struct {
	// ID is the API's id for the command.
	ID          string
	SandboxUUID string
	// AgentID is the guest agent's id for the background process.
	AgentID   string
	Command   []string
	PID       int
	StartedAt time.Time
}

const detachedColumns = `id, sandbox_uuid, agent_id, command, pid, started_at`

// AddDetached records d. StartedAt defaults to now. A taken ID is
// ErrAlreadyExists; an unknown sandbox is ErrNotFound.
func (s *Store) AddDetached(ctx context.Context, d Detached) (Detached, error) {
	if d.ID == "" || d.SandboxUUID == "" || d.AgentID == "" {
		return Detached{}, fmt.Errorf("recording a detached command: id, sandbox uuid and agent id are required: %w", errdefs.ErrInvalidArgument)
	}
	for _, f := range []struct{ name, v string }{{"id", d.ID}, {"sandbox uuid", d.SandboxUUID}, {"agent id", d.AgentID}} {
		if err := checkLen(f.name, f.v, maxShort); err != nil {
			return Detached{}, fmt.Errorf("recording detached command %s: %w", d.ID, err)
		}
	}
	if d.Command == nil {
		d.Command = []string{}
	}
	cmd, err := json.Marshal(d.Command)
	if err != nil {
		return Detached{}, fmt.Errorf("recording detached command %s: %w", d.ID, err)
	}
	if len(cmd) > maxCommand {
		return Detached{}, fmt.Errorf("recording detached command %s: command is %d bytes of JSON, more than %d: %w",
			d.ID, len(cmd), maxCommand, errdefs.ErrInvalidArgument)
	}
	if d.StartedAt.IsZero() {
		d.StartedAt = s.now()
	}
	d.StartedAt = d.StartedAt.UTC()
	_, err = s.w.ExecContext(ctx, `INSERT INTO detached (`+detachedColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		d.ID, d.SandboxUUID, d.AgentID, string(cmd), d.PID, toNS(d.StartedAt))
	switch {
	case isUnique(err):
		return Detached{}, fmt.Errorf("detached command %s: %w", d.ID, errdefs.ErrAlreadyExists)
	case isForeignKey(err):
		return Detached{}, fmt.Errorf("sandbox %s: %w", d.SandboxUUID, errdefs.ErrNotFound)
	case err != nil:
		return Detached{}, fmt.Errorf("recording detached command %s: %w", d.ID, err)
	}
	return d, nil
}

// ListDetached returns a sandbox's detached commands, oldest first.
func (s *Store) ListDetached(ctx context.Context, sandboxUUID string) ([]Detached, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+detachedColumns+` FROM detached
		WHERE sandbox_uuid = ? ORDER BY started_at, id`, sandboxUUID)
	if err != nil {
		return nil, fmt.Errorf("listing detached commands of sandbox %s: %w", sandboxUUID, err)
	}
	defer rows.Close()
	var out []Detached
	for rows.Next() {
		d, err := scanDetached(rows)
		if err != nil {
			return nil, fmt.Errorf("listing detached commands of sandbox %s: %w", sandboxUUID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing detached commands of sandbox %s: %w", sandboxUUID, err)
	}
	return out, nil
}

// GetDetached returns the detached command id of a sandbox, or ErrNotFound
// (also when id belongs to another sandbox).
func (s *Store) GetDetached(ctx context.Context, sandboxUUID, id string) (Detached, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+detachedColumns+` FROM detached WHERE sandbox_uuid = ? AND id = ?`, sandboxUUID, id)
	d, err := scanDetached(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Detached{}, fmt.Errorf("detached command %s: %w", id, errdefs.ErrNotFound)
	}
	if err != nil {
		return Detached{}, fmt.Errorf("reading detached command %s: %w", id, err)
	}
	return d, nil
}

// DeleteDetached forgets a detached command, or returns ErrNotFound.
func (s *Store) DeleteDetached(ctx context.Context, sandboxUUID, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM detached WHERE sandbox_uuid = ? AND id = ?`, sandboxUUID, id)
	if err != nil {
		return fmt.Errorf("deleting detached command %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("deleting detached command %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("detached command %s: %w", id, errdefs.ErrNotFound)
	}
	return nil
}

func scanDetached(sc scanner) (Detached, error) {
	var (
		d       Detached
		cmd     string
		started int64
	)
	if err := sc.Scan(&d.ID, &d.SandboxUUID, &d.AgentID, &cmd, &d.PID, &started); err != nil {
		return Detached{}, err
	}
	if err := json.Unmarshal([]byte(cmd), &d.Command); err != nil {
		return Detached{}, fmt.Errorf("detached command %s: corrupt command: %w", d.ID, err)
	}
	d.StartedAt = fromNS(started)
	return d, nil
}
