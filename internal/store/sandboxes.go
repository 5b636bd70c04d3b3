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

// Field limits. The daemon validates requests first; these keep a bug or a
// hostile request from filling the database.
const (
	maxName      = 256
	maxShort     = 4 << 10  // backend, image, profile, status, ids
	maxErrorText = 64 << 10 // error text
	maxSpec      = 1 << 20  // spec JSON
	maxLabels    = 64 << 10 // labels JSON
)

// Sandbox is one row of the sandboxes table.
type Sandbox struct {
	UUID    string
	Name    string
	Status  string
	Backend string
	Image   string
	Profile string
	// Spec is the sandbox's internal/sandbox.Spec as JSON. The store keeps
	// it opaque (so it does not import the package that uses it); empty
	// means "{}".
	Spec      json.RawMessage
	VCPUs     int
	MemoryMB  int
	Labels    map[string]string
	Ephemeral bool
	// Error is why the sandbox failed, when it did.
	Error     string
	CreatedAt time.Time
	UpdatedAt time.Time
	// ExpiresAt is when the TTL reaper removes the sandbox; nil is never.
	ExpiresAt *time.Time
	// StartedAt is when the sandbox last became running; nil is never.
	StartedAt *time.Time
	// Pool is the key of the warm pool a pooled sandbox waits in; empty
	// for a sandbox a caller has (see ClaimSandbox).
	Pool string
}

const sandboxColumns = `uuid, name, status, backend, image, profile, spec, vcpus, memory_mb,
	labels, ephemeral, error, created_at, updated_at, expires_at, started_at, pool`

// CreateSandbox inserts sb. CreatedAt defaults to now; UpdatedAt is set to
// CreatedAt. A taken name or UUID is ErrAlreadyExists. It returns the row as
// stored.
func (s *Store) CreateSandbox(ctx context.Context, sb Sandbox) (Sandbox, error) {
	if sb.UUID == "" || sb.Name == "" || sb.Status == "" {
		return Sandbox{}, fmt.Errorf("creating a sandbox: uuid, name and status are required: %w", errdefs.ErrInvalidArgument)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"uuid", sb.UUID, maxShort}, {"name", sb.Name, maxName}, {"status", sb.Status, maxShort},
		{"backend", sb.Backend, maxShort}, {"image", sb.Image, maxShort}, {"profile", sb.Profile, maxShort},
		{"error", sb.Error, maxErrorText}, {"pool", sb.Pool, maxShort},
	} {
		if err := checkLen(f.name, f.v, f.max); err != nil {
			return Sandbox{}, fmt.Errorf("creating sandbox %q: %w", sb.Name, err)
		}
	}
	if len(sb.Spec) == 0 {
		sb.Spec = json.RawMessage("{}")
	}
	if len(sb.Spec) > maxSpec || !json.Valid(sb.Spec) {
		return Sandbox{}, fmt.Errorf("creating sandbox %q: spec is not valid JSON of at most %d bytes: %w", sb.Name, maxSpec, errdefs.ErrInvalidArgument)
	}
	labels, err := encodeLabels(sb.Labels)
	if err != nil {
		return Sandbox{}, fmt.Errorf("creating sandbox %q: %w", sb.Name, err)
	}
	if sb.CreatedAt.IsZero() {
		sb.CreatedAt = s.now()
	}
	sb.CreatedAt = sb.CreatedAt.UTC()
	sb.UpdatedAt = sb.CreatedAt
	_, err = s.w.ExecContext(ctx, `INSERT INTO sandboxes (`+sandboxColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sb.UUID, sb.Name, sb.Status, sb.Backend, sb.Image, sb.Profile, string(sb.Spec), sb.VCPUs, sb.MemoryMB,
		labels, sb.Ephemeral, sb.Error, toNS(sb.CreatedAt), toNS(sb.UpdatedAt), toNullNS(sb.ExpiresAt), toNullNS(sb.StartedAt), sb.Pool)
	if isUnique(err) {
		return Sandbox{}, fmt.Errorf("sandbox %q: %w", sb.Name, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return Sandbox{}, fmt.Errorf("creating sandbox %q: %w", sb.Name, err)
	}
	if sb.ExpiresAt != nil {
		t := sb.ExpiresAt.UTC()
		sb.ExpiresAt = &t
	}
	if sb.StartedAt != nil {
		t := sb.StartedAt.UTC()
		sb.StartedAt = &t
	}
	if len(sb.Labels) == 0 {
		sb.Labels = nil
	}
	return sb, nil
}

// GetSandbox returns the sandbox called name, or ErrNotFound.
func (s *Store) GetSandbox(ctx context.Context, name string) (Sandbox, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE name = ?`, name)
	sb, err := scanSandbox(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Sandbox{}, fmt.Errorf("sandbox %q: %w", name, errdefs.ErrNotFound)
	}
	if err != nil {
		return Sandbox{}, fmt.Errorf("reading sandbox %q: %w", name, err)
	}
	return sb, nil
}

// GetSandboxByUUID returns the sandbox with the given UUID, or ErrNotFound.
func (s *Store) GetSandboxByUUID(ctx context.Context, uuid string) (Sandbox, error) {
	row := s.r.QueryRowContext(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE uuid = ?`, uuid)
	sb, err := scanSandbox(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Sandbox{}, fmt.Errorf("sandbox %s: %w", uuid, errdefs.ErrNotFound)
	}
	if err != nil {
		return Sandbox{}, fmt.Errorf("reading sandbox %s: %w", uuid, err)
	}
	return sb, nil
}

// ListSandboxes returns every sandbox, oldest first (then by name).
func (s *Store) ListSandboxes(ctx context.Context) ([]Sandbox, error) {
	return s.querySandboxes(ctx, `SELECT `+sandboxColumns+` FROM sandboxes ORDER BY created_at, name`)
}

// ListExpired returns the sandboxes whose expiry is at or before now,
// soonest expiry first.
func (s *Store) ListExpired(ctx context.Context, now time.Time) ([]Sandbox, error) {
	return s.querySandboxes(ctx, `SELECT `+sandboxColumns+` FROM sandboxes
		WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at, name`, toNS(now))
}

func (s *Store) querySandboxes(ctx context.Context, q string, args ...any) ([]Sandbox, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing sandboxes: %w", err)
	}
	defer rows.Close()
	var out []Sandbox
	for rows.Next() {
		sb, err := scanSandbox(rows)
		if err != nil {
			return nil, fmt.Errorf("listing sandboxes: %w", err)
		}
		out = append(out, sb)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing sandboxes: %w", err)
	}
	return out, nil
}

// UpdateSandboxStatus sets a sandbox's status and error text and bumps
// UpdatedAt. When the status becomes "running" from another status,
// StartedAt is set to now. A missing sandbox is ErrNotFound.
func (s *Store) UpdateSandboxStatus(ctx context.Context, uuid, status, errText string) error {
	if status == "" {
		return fmt.Errorf("updating sandbox %s: empty status: %w", uuid, errdefs.ErrInvalidArgument)
	}
	if err := checkLen("status", status, maxShort); err != nil {
		return fmt.Errorf("updating sandbox %s: %w", uuid, err)
	}
	if err := checkLen("error", errText, maxErrorText); err != nil {
		return fmt.Errorf("updating sandbox %s: %w", uuid, err)
	}
	now := toNS(s.now())
	res, err := s.w.ExecContext(ctx, `UPDATE sandboxes SET
			started_at = CASE WHEN ?1 = 'running' AND status <> 'running' THEN ?3 ELSE started_at END,
			status = ?1, error = ?2, updated_at = ?3
		WHERE uuid = ?4`, status, errText, now, uuid)
	return s.checkUpdated(res, err, uuid)
}

// SetSandboxExpiry sets (or, with nil, clears) a sandbox's expiry.
func (s *Store) SetSandboxExpiry(ctx context.Context, uuid string, expiresAt *time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE sandboxes SET expires_at = ?, updated_at = ? WHERE uuid = ?`,
		toNullNS(expiresAt), toNS(s.now()), uuid)
	return s.checkUpdated(res, err, uuid)
}

// Claim is what a claim binds to a pooled sandbox.
type Claim struct {
	Name      string
	Labels    map[string]string
	Ephemeral bool
	ExpiresAt *time.Time
	Spec      json.RawMessage
	// VCPUs and MemoryMB are the caller's limits (a claim may resize).
	VCPUs    int
	MemoryMB int
}

// ClaimSandbox hands the pooled sandbox uuid to a caller: it takes c's
// name, labels, expiry, spec and limits and leaves its pool, in one statement, so
// two claims of one sandbox cannot both succeed. A sandbox that is not
// pooled (any more) is ErrNotFound; a taken name is ErrAlreadyExists.
func (s *Store) ClaimSandbox(ctx context.Context, uuid string, c Claim) error {
	if err := checkLen("name", c.Name, maxName); err != nil {
		return fmt.Errorf("claiming sandbox %s: %w", uuid, err)
	}
	if len(c.Spec) > maxSpec || !json.Valid(c.Spec) {
		return fmt.Errorf("claiming sandbox %s: spec is not valid JSON of at most %d bytes: %w", uuid, maxSpec, errdefs.ErrInvalidArgument)
	}
	labels, err := encodeLabels(c.Labels)
	if err != nil {
		return fmt.Errorf("claiming sandbox %s: %w", uuid, err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE sandboxes SET
			name = ?, labels = ?, ephemeral = ?, expires_at = ?, spec = ?, vcpus = ?, memory_mb = ?, pool = '', updated_at = ?
		WHERE uuid = ? AND pool <> ''`,
		c.Name, labels, c.Ephemeral, toNullNS(c.ExpiresAt), string(c.Spec), c.VCPUs, c.MemoryMB, toNS(s.now()), uuid)
	if isUnique(err) {
		return fmt.Errorf("sandbox %q: %w", c.Name, errdefs.ErrAlreadyExists)
	}
	return s.checkUpdated(res, err, uuid)
}

// DeleteSandbox removes a sandbox and its detached commands. Its events stay:
// the audit trail outlives the sandbox (see DeleteEventsBefore).
func (s *Store) DeleteSandbox(ctx context.Context, uuid string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM sandboxes WHERE uuid = ?`, uuid)
	return s.checkUpdated(res, err, uuid)
}

func (s *Store) checkUpdated(res sql.Result, err error, uuid string) error {
	if err != nil {
		return fmt.Errorf("updating sandbox %s: %w", uuid, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("updating sandbox %s: %w", uuid, err)
	}
	if n == 0 {
		return fmt.Errorf("sandbox %s: %w", uuid, errdefs.ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanSandbox(sc scanner) (Sandbox, error) {
	var (
		sb               Sandbox
		spec, labels     string
		created, updated int64
		expires, started sql.NullInt64
	)
	err := sc.Scan(&sb.UUID, &sb.Name, &sb.Status, &sb.Backend, &sb.Image, &sb.Profile, &spec, &sb.VCPUs, &sb.MemoryMB,
		&labels, &sb.Ephemeral, &sb.Error, &created, &updated, &expires, &started, &sb.Pool)
	if err != nil {
		return Sandbox{}, err
	}
	sb.Spec = json.RawMessage(spec)
	if labels != "" && labels != "{}" {
		if err := json.Unmarshal([]byte(labels), &sb.Labels); err != nil {
			return Sandbox{}, fmt.Errorf("sandbox %q: corrupt labels: %w", sb.Name, err)
		}
		if len(sb.Labels) == 0 {
			sb.Labels = nil
		}
	}
	sb.CreatedAt, sb.UpdatedAt = fromNS(created), fromNS(updated)
	sb.ExpiresAt, sb.StartedAt = fromNullNS(expires), fromNullNS(started)
	return sb, nil
}

func encodeLabels(l map[string]string) (string, error) {
	if len(l) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return "", fmt.Errorf("labels: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	if len(b) > maxLabels {
		return "", fmt.Errorf("labels are %d bytes of JSON, more than %d: %w", len(b), maxLabels, errdefs.ErrInvalidArgument)
	}
	return string(b), nil
}
