package sandbox

import (
	"context"
	"fmt"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Memory snapshots. CheckpointSandbox writes a running sandbox's memory
// and processes into a directory through its supervisor and leaves it
// paused (status "paused"), so that its files can be captured as they
// were at that moment; ResumeSandbox then lets it go on. RestoreSandbox
// creates a new sandbox, with its own name, network identity, gateway
// and TTL, that continues from such a directory. internal/image/build
// keeps the directories as the memory part of a snapshot.

// noMemorySnapshots is the refusal for a backend without checkpoints,
// saying why.
func (m *Manager) noMemorySnapshots(backendName string) error {
	why := "it cannot checkpoint sandboxes"
	switch backendName {
	case "container":
		why = "it would need CRIU (runc checkpoint/restore), which agentkernel does not drive: " +
			"Debian's criu 3.17 fails `criu check` on the kernel 6.18 it was developed on (\"vdso: Unexpected rt vDSO area bounds\")"
	case "microvm":
		why = "QEMU migration to a file is not wired up yet"
	}
	return fmt.Errorf("%w: memory snapshots are not supported by backend %s: %s; "+
		"take a filesystem snapshot without --memory, or use the gvisor backend", errdefs.ErrNotImplemented, backendName, why)
}

// SupportsMemorySnapshots reports whether backendName can take memory
// snapshots, with the refusal when it cannot.
func (m *Manager) SupportsMemorySnapshots(backendName string) error {
	b, ok := m.cfg.Backends[backendName]
	if !ok {
		return fmt.Errorf("%w: unknown backend %q", errdefs.ErrInvalidArgument, backendName)
	}
	if !b.Capabilities().Checkpoint {
		return m.noMemorySnapshots(backendName)
	}
	return nil
}

// CheckpointSandbox writes the memory snapshot of running sandbox name
// into dir, an empty directory, and leaves the sandbox paused.
func (m *Manager) CheckpointSandbox(ctx context.Context, name, dir string) (api.SandboxInfo, error) {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	if err := m.SupportsMemorySnapshots(rec.Backend); err != nil {
		return api.SandboxInfo{}, err
	}
	unlock := m.locks.Lock(rec.UUID)
	defer unlock()
	cur, err := m.cfg.Store.GetSandboxByUUID(ctx, rec.UUID)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	l := m.getLive(rec.UUID)
	if cur.Status != api.StatusRunning || l == nil {
		return api.SandboxInfo{}, fmt.Errorf("%w: sandbox %s is %s; only a running sandbox has a memory snapshot", errdefs.ErrFailedPrecondition, name, cur.Status)
	}
	// The agent drops its host connections for the checkpoint.
	l.closeAgent()
	if _, err := l.sup.Checkpoint(ctx, dir); err != nil {
		return api.SandboxInfo{}, fmt.Errorf("sandbox %s: memory snapshot: %w", name, err)
	}
	if err := m.setStatus(ctx, rec.UUID, name, api.StatusPaused, ""); err != nil {
		return api.SandboxInfo{}, err
	}
	m.event(rec.UUID, name, "sandbox_checkpointed", nil)
	m.event(rec.UUID, name, "sandbox_paused", nil)
	return m.info(ctx, rec.UUID)
}

// RestoreSandbox creates and starts sandbox req.Name continuing the
// memory snapshot in dir (written by CheckpointSandbox on req.Backend).
// req.Image must hold the snapshotted sandbox's files.
func (m *Manager) RestoreSandbox(ctx context.Context, req api.CreateSandboxRequest, dir string) (api.SandboxInfo, error) {
	if req.SourceURL != "" || (req.Start != nil && !*req.Start) {
		return api.SandboxInfo{}, fmt.Errorf("%w: a restored sandbox starts at once and clones nothing", errdefs.ErrInvalidArgument)
	}
	return m.createSandbox(ctx, req, &backend.RestoreSpec{ImageDir: dir})
}
