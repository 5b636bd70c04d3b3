package sandbox

import (
	"context"
	"github.com/agentkernel/agentkernel/internal/backend"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// Recover brings the daemon's view in line with the host after a start or
// a crash: live supervisors are re-adopted, sandboxes whose supervisor died
// are released and marked, leftover state directories without a record are
// swept, and the TTL reaper starts. Call it once, before serving.
func (m *Manager) Recover(ctx context.Context) error {
	m.wg.Add(1)
	go m.forwardAudit()
	recs, err := m.cfg.Store.ListSandboxes(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, rec := range recs {
		known[filepath.Base(m.stateDir(rec.UUID))] = true
		if rec.Pool != "" && rec.Status != api.StatusRunning {
			// Half made when the daemon went: never handed out.
			m.log.Info("removing a pooled sandbox left half made", "sandbox", rec.Name, "status", rec.Status)
			m.removePooledLocked(ctx, rec)
			continue
		}
		switch rec.Status {
		case api.StatusRunning, api.StatusStarting, api.StatusStopping, api.StatusPaused:
		default:
			if rec.Ephemeral {
				m.removeLocked(ctx, rec.UUID, rec.Name)
			}
			continue
		}
		dir := m.stateDir(rec.UUID)
		sup := supervisor.Dial(dir)
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		st, err := sup.Status(pctx)
		cancel()
		if rec.Pool != "" && (err != nil || st.State != "running") {
			m.removePooledLocked(ctx, rec)
			continue
		}
		if err == nil && (st.State == "running" || st.State == supervisor.StatePaused) {
			l := newLiveSandbox(rec.UUID, rec.Name, sup)
			if err := m.claimVolumes(ctx, rec.UUID, true); err != nil {
				m.log.Warn("re-adopted sandbox's volumes", "sandbox", rec.Name, "err", err)
			}
			m.watch(l, nil)
			want := api.StatusRunning
			if st.State == supervisor.StatePaused {
				want = api.StatusPaused
			}
			if rec.Status != want {
				m.recordStatus(ctx, rec.UUID, rec.Name, want, "")
			}
			m.log.Info("re-adopted sandbox", "sandbox", rec.Name, "supervisor_pid", st.PID)
			m.event(rec.UUID, rec.Name, "sandbox_adopted", map[string]any{"supervisor_pid": st.PID})
			continue
		}
		// The supervisor is gone: release what it held and say why.
		m.cleanup(ctx, rec.UUID)
		status, reason := api.StatusFailed, "the sandbox's supervisor died while the daemon was down"
		if e, _ := supervisor.ReadExit(dir); e != nil {
			if e.Requested {
				status, reason = api.StatusStopped, ""
			} else if e.Error != "" {
				reason = e.Error
			}
		}
		m.recordStatus(ctx, rec.UUID, rec.Name, status, reason)
		if status == api.StatusFailed {
			m.log.Warn("sandbox lost while the daemon was down", "sandbox", rec.Name, "reason", reason)
			m.event(rec.UUID, rec.Name, "sandbox_failed", map[string]any{"error": reason, "found": "at daemon start"})
		} else {
			m.event(rec.UUID, rec.Name, "sandbox_stopped", map[string]any{"found": "at daemon start"})
		}
		if rec.Ephemeral {
			m.removeLocked(ctx, rec.UUID, rec.Name)
		}
	}
	m.sweep(ctx, known)
	m.wg.Add(1)
	go m.reapLoop()
	return nil
}

// sweep removes state directories that have no record: the remains of a
// removal that a crash interrupted.
func (m *Manager) sweep(ctx context.Context, known map[string]bool) {
	entries, err := os.ReadDir(m.cfg.Layout.SandboxesDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || known[e.Name()] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(m.cfg.Layout.SandboxesDir(), e.Name())
		m.log.Info("sweeping leftover sandbox directory", "dir", dir)
		// A removal cut short by the daemon's death may have left the
		// sandbox running: its supervisor answers, so cleanup would not
		// kill it, and it would write into the directory being removed
		// (a microVM's supervisor lives on until QEMU is gone). Stop it
		// first, and make sure it has exited.
		sctx, cancel := context.WithTimeout(ctx, stopTimeout)
		sup := supervisor.Dial(dir)
		if _, err := sup.Status(sctx); err == nil {
			sup.Stop(sctx)
		}
		sup.Kill(sctx)
		if spec, err := backend.ReadSpec(dir); err == nil {
			m.destroy(sctx, spec.ID) // cleanup, and what the backend keeps across stops
		}
		cancel()
		if err := os.RemoveAll(dir); err != nil {
			m.log.Error("sweeping leftover sandbox directory", "dir", dir, "err", err)
		}
	}
}

// EventRetention is how long the store keeps a sandbox's events (its
// audit trail, which outlives the sandbox). Without a bound, a daemon
// that runs many short sandboxes grows its database forever (test/soak
// found 114,195 rows after one run).
const EventRetention = 7 * 24 * time.Hour

// reapLoop removes sandboxes whose TTL has passed and, about hourly,
// events older than EventRetention.
func (m *Manager) reapLoop() {
	defer m.wg.Done()
	t := time.NewTicker(reapInterval)
	defer t.Stop()
	var pruned time.Time
	prev := time.Now()
	for {
		select {
		case <-m.ctx.Done():
			return
		case now := <-t.C:
			if jump := clockJump(prev, now); jump != 0 {
				m.clockJumped(m.ctx, jump)
			}
			prev = now
			if now.Sub(pruned) >= time.Hour {
				pruned = now
				if n, err := m.cfg.Store.DeleteEventsBefore(m.ctx, now.Add(-EventRetention)); err != nil {
					m.log.Warn("pruning old events", "err", err)
				} else if n > 0 {
					m.log.Info("pruned old events", "events", n)
				}
			}
			recs, err := m.cfg.Store.ListExpired(m.ctx, now)
			if err != nil {
				continue
			}
			for _, rec := range recs {
				if m.cfg.PausedTTLStops && rec.Status == api.StatusPaused {
					continue // its clock stands still while paused
				}
				m.log.Info("sandbox expired", "sandbox", rec.Name)
				m.event(rec.UUID, rec.Name, "sandbox_expired", nil)
				unlock := m.locks.Lock(rec.UUID)
				m.removeLocked(m.ctx, rec.UUID, rec.Name)
				unlock()
			}
		}
	}
}

// clockJumpThreshold is how far the wall clock may move between two reaper
// ticks beyond the time that really passed before it counts as a jump
// (an operator's or NTP's step; a host suspend, which the monotonic clock
// does not count). NTP's slewing moves it by milliseconds.
const clockJumpThreshold = 30 * time.Second

// clockJump returns how far the wall clock jumped between the readings
// prev and now (beyond what their monotonic readings say passed), or 0.
func clockJump(prev, now time.Time) time.Duration {
	return jumpOf(now.Round(0).Sub(prev.Round(0)), now.Sub(prev))
}

// jumpOf is clockJump of a wall-clock and a monotonic elapsed time.
func jumpOf(wall, mono time.Duration) time.Duration {
	if j := wall - mono; j >= clockJumpThreshold || j <= -clockJumpThreshold {
		return j
	}
	return 0
}

// clockJumped moves every sandbox's expiry by the wall clock's jump, so a
// TTL stays the time a sandbox may live: a clock stepped forward by an hour
// would otherwise remove every sandbox with less than an hour left at
// once, before its time, and one stepped back would keep them an hour too
// long. (A jump while no daemon runs is not seen: expiries are wall-clock
// times in the store.)
func (m *Manager) clockJumped(ctx context.Context, jump time.Duration) {
	recs, err := m.cfg.Store.ListSandboxes(ctx)
	if err != nil {
		m.log.Warn("the wall clock jumped; sandbox expiries not moved", "jump", jump, "err", err)
		return
	}
	n := 0
	for _, rec := range recs {
		if rec.ExpiresAt == nil {
			continue
		}
		exp := rec.ExpiresAt.Add(jump).UTC()
		if err := m.cfg.Store.SetSandboxExpiry(ctx, rec.UUID, &exp); err != nil {
			m.log.Warn("moving a sandbox's expiry after a clock jump", "sandbox", rec.Name, "err", err)
			continue
		}
		n++
		m.event(rec.UUID, rec.Name, "sandbox_expiry_moved", map[string]any{"clock_jump_ms": jump.Milliseconds(), "expires_at": exp})
	}
	m.log.Warn("the wall clock jumped; sandbox expiries moved with it, so each keeps the time it had left", "jump", jump.String(), "sandboxes", n)
}
