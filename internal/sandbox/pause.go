package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Pause and resume: a paused sandbox keeps its processes and files, frozen
// by its backend (the cgroup freezer for containers, QMP stop for
// microVMs), and uses no CPU. Exec and file operations on it are refused
// with a message saying to resume it; stop and remove work (the
// supervisor resumes first). Its TTL clock keeps running unless
// Config.PausedTTLStops.

// moveExpiryPastPause moves a resumed sandbox's expiry on by the time it
// was paused (since its last sandbox_paused event), for PausedTTLStops.
func (m *Manager) moveExpiryPastPause(ctx context.Context, uuid, name string) {
	rec, err := m.cfg.Store.GetSandboxByUUID(ctx, uuid)
	if err != nil || rec.ExpiresAt == nil {
		return
	}
	evs, err := m.cfg.Store.ListEvents(ctx, uuid, 50)
	if err != nil {
		m.log.Warn("finding when the sandbox was paused", "sandbox", name, "err", err)
		return
	}
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Event == "sandbox_paused" {
			exp := rec.ExpiresAt.Add(time.Since(evs[i].Time)).UTC()
			if err := m.cfg.Store.SetSandboxExpiry(ctx, uuid, &exp); err != nil {
				m.log.Warn("moving the expiry past the pause", "sandbox", name, "err", err)
			}
			return
		}
	}
}

// PauseSandbox freezes a running sandbox.
func (m *Manager) PauseSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	return m.setPaused(ctx, name, true)
}

// ResumeSandbox lets a paused sandbox's processes go on where they were.
func (m *Manager) ResumeSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	return m.setPaused(ctx, name, false)
}

func (m *Manager) setPaused(ctx context.Context, name string, pause bool) (api.SandboxInfo, error) {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	if b, ok := m.cfg.Backends[rec.Backend]; !ok || !b.Capabilities().Pause {
		return api.SandboxInfo{}, fmt.Errorf("%w: sandbox %s: the %s backend cannot pause sandboxes", errdefs.ErrNotImplemented, name, rec.Backend)
	}
	unlock := m.locks.Lock(rec.UUID)
	defer unlock()
	from, to, verb := api.StatusRunning, api.StatusPaused, "pause"
	if !pause {
		from, to, verb = api.StatusPaused, api.StatusRunning, "resume"
	}
	cur, err := m.cfg.Store.GetSandboxByUUID(ctx, rec.UUID)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	if cur.Status == to {
		return m.info(ctx, rec.UUID) // already so
	}
	l := m.getLive(rec.UUID)
	if cur.Status != from || l == nil {
		return api.SandboxInfo{}, fmt.Errorf("%w: sandbox %s is %s; only a %s sandbox can %s", errdefs.ErrFailedPrecondition, name, cur.Status, from, verb)
	}
	if pause {
		_, err = l.sup.Pause(ctx)
	} else {
		_, err = l.sup.Resume(ctx)
	}
	if err != nil {
		return api.SandboxInfo{}, fmt.Errorf("sandbox %s: %s: %w", name, verb, err)
	}
	if err := m.setStatus(ctx, rec.UUID, name, to, ""); err != nil {
		return api.SandboxInfo{}, err
	}
	if !pause && m.cfg.PausedTTLStops {
		m.moveExpiryPastPause(ctx, rec.UUID, name)
	}
	m.event(rec.UUID, name, "sandbox_"+verb+"d", nil)
	return m.info(ctx, rec.UUID)
}
