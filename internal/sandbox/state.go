package sandbox

import (
	"context"
	"fmt"
	"slices"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// The lifecycle of a sandbox as a state table. Every status the manager
// stores goes through setStatus, which refuses a move the table does not
// list, so a bug shows as a TransitionError instead of a sandbox in a state
// nobody planned for.
//
//	created  → starting                 (first start)
//	starting → running | failed         (the start worked, or did not)
//	running  → stopping | failed        (a stop; the sandbox ended on its own)
//	running  → paused                   (a pause: its processes frozen)
//	paused   → running                  (a resume)
//	paused   → stopping | failed        (a stop, which resumes first; it ended)
//	stopping → stopped | failed         (the stop finished; the teardown broke)
//	stopped  → starting                 (start again)
//	failed   → starting                 (start again)
//
// Recovery after a daemon restart may also move a sandbox the dead daemon
// left in flight: starting or stopping → running (its supervisor lives
// and is re-adopted; stopping → paused when its supervisor says it still
// is), and running,
// starting, stopping or paused → stopped (its supervisor had recorded a
// requested exit).
var transitions = map[string][]string{
	api.StatusCreated:  {api.StatusStarting},
	api.StatusStarting: {api.StatusRunning, api.StatusFailed, api.StatusStopped},
	api.StatusRunning:  {api.StatusStopping, api.StatusFailed, api.StatusStopped, api.StatusPaused},
	api.StatusPaused:   {api.StatusRunning, api.StatusStopping, api.StatusFailed, api.StatusStopped},
	api.StatusStopping: {api.StatusStopped, api.StatusFailed, api.StatusRunning, api.StatusPaused},
	api.StatusStopped:  {api.StatusStarting},
	api.StatusFailed:   {api.StatusStarting},
}

// TransitionError is a status change the lifecycle does not allow. Its
// class is errdefs.ErrFailedPrecondition.
type TransitionError struct {
	Sandbox  string
	From, To string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("sandbox %s cannot go from %s to %s", e.Sandbox, e.From, e.To)
}

func (e *TransitionError) Unwrap() error { return errdefs.ErrFailedPrecondition }

// allowed reports whether the table lets a sandbox go from one status to
// another. Staying in a status is not a transition and is not allowed.
func allowed(from, to string) bool { return slices.Contains(transitions[from], to) }

// setStatus moves sandbox uuid (named name) to status to, recording
// reason as its error text (empty clears it). It reads the stored status
// first and refuses a move the table does not allow. The caller holds the
// sandbox's lock (m.locks), so nothing changes the status in between.
func (m *Manager) setStatus(ctx context.Context, uuid, name, to, reason string) error {
	rec, err := m.cfg.Store.GetSandboxByUUID(ctx, uuid)
	if err != nil {
		return err
	}
	if !allowed(rec.Status, to) {
		return &TransitionError{Sandbox: name, From: rec.Status, To: to}
	}
	return m.cfg.Store.UpdateSandboxStatus(ctx, uuid, to, reason)
}

// recordStatus is setStatus for paths that cannot give up (a failure being
// reported, a teardown): an error is logged, never dropped silently.
func (m *Manager) recordStatus(ctx context.Context, uuid, name, to, reason string) {
	if err := m.setStatus(ctx, uuid, name, to, reason); err != nil {
		m.log.Error("recording a sandbox's status", "sandbox", name, "status", to, "err", err)
	}
}
