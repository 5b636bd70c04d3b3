package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// lostWait bounds how long an operation cut off by its sandbox's end waits
// for the sandbox's watcher to record why (it learns within milliseconds
// from its supervisor, or from the supervisor's death).
const lostWait = 3 * time.Second

// explainCut turns err, an operation (what: "the command", "the copy")
// cut off because the sandbox's agent went away mid-stream (the agent
// protocol's bare "stream ended early"), into an error that names the
// sandbox and says what happened to it: its supervisor died, its init was
// killed, it was stopped or removed. Other errors come back unchanged.
func (m *Manager) explainCut(ctx context.Context, uuid, name, what string, err error) error {
	if err == nil || !errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	reason := m.whyCut(context.WithoutCancel(ctx), uuid, name)
	return fmt.Errorf("%w: sandbox %s: %s was cut off: %s", errdefs.ErrUnavailable, name, what, reason)
}

// whyCut waits (at most lostWait) for the sandbox's record to show why its
// agent went away, and otherwise asks its supervisor.
func (m *Manager) whyCut(ctx context.Context, uuid, name string) string {
	deadline := time.Now().Add(lostWait)
	for {
		rec, err := m.cfg.Store.GetSandboxByUUID(ctx, uuid)
		switch {
		case errors.Is(err, errdefs.ErrNotFound):
			return "the sandbox was removed"
		case err == nil && rec.Status == api.StatusFailed:
			r := rec.Error
			if r == "" {
				r = "it failed"
			}
			return fmt.Sprintf("%s; the sandbox is now failed (its files are kept: agentkernel sandbox start %s)", r, name)
		case err == nil && (rec.Status == api.StatusStopped || rec.Status == api.StatusStopping):
			return "the sandbox was stopped"
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	l := m.getLive(uuid)
	if l == nil {
		return "the sandbox is no longer running"
	}
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := l.sup.Status(sctx)
	switch {
	case err != nil:
		return "its supervisor does not answer"
	case st.Agent != nil && st.Agent.State == supervisor.AgentUnresponsive:
		return fmt.Sprintf("its guest agent has not answered since %s (%s)", st.Agent.Since.UTC().Format(time.RFC3339), st.Agent.Error)
	}
	return "the connection to its guest agent was lost (the sandbox still runs)"
}
