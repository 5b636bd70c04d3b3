package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// lookup finds a sandbox's record by name.
func (m *Manager) lookup(ctx context.Context, name string) (store.Sandbox, error) {
	if err := ValidateName(name); err != nil {
		return store.Sandbox{}, err
	}
	rec, err := m.cfg.Store.GetSandbox(ctx, name)
	if errors.Is(err, errdefs.ErrNotFound) || err == nil && rec.Pool != "" {
		return store.Sandbox{}, fmt.Errorf("%w: no sandbox named %q", errdefs.ErrNotFound, name)
	}
	return rec, err
}

func (m *Manager) info(ctx context.Context, uuid string) (api.SandboxInfo, error) {
	rec, err := m.cfg.Store.GetSandboxByUUID(ctx, uuid)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	return m.toInfo(rec), nil
}

// toInfoDisk is toInfo with the disk's use of a running sandbox (info and
// list; the answers of lifecycle operations such as create skip the
// agent's round trip).
func (m *Manager) toInfoDisk(ctx context.Context, rec store.Sandbox) api.SandboxInfo {
	infos := []api.SandboxInfo{m.toInfo(rec)}
	m.addDiskUsage(ctx, infos)
	return infos[0]
}

func (m *Manager) toInfo(rec store.Sandbox) api.SandboxInfo {
	info := api.SandboxInfo{
		Name: rec.Name, UUID: rec.UUID, Status: rec.Status, Backend: rec.Backend,
		Image: rec.Image, Profile: rec.Profile, VCPUs: rec.VCPUs, MemoryMB: rec.MemoryMB,
		Labels: rec.Labels, CreatedAt: rec.CreatedAt, ExpiresAt: rec.ExpiresAt,
		Error: rec.Error, Ephemeral: rec.Ephemeral,
	}
	if spec, err := specOf(rec.Spec); err == nil {
		info.Network = spec.Security.Network
		info.DiskMB = spec.Resources.DiskMB
		for _, v := range spec.Volumes {
			info.Volumes = append(info.Volumes, volumeSpec(v))
		}
	} else if sec, err := ResolveProfile(rec.Profile); err == nil {
		info.Network = sec.Network
	}
	info.Accelerator = runtimeAccelerator(m.stateDir(rec.UUID))
	return info
}

// ListSandboxes lists every sandbox, oldest first.
func (m *Manager) ListSandboxes(ctx context.Context) ([]api.SandboxInfo, error) {
	recs, err := m.cfg.Store.ListSandboxes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.SandboxInfo, 0, len(recs))
	for _, r := range recs {
		if r.Pool != "" {
			continue // pooled: no caller's yet (see GET /pools)
		}
		out = append(out, m.toInfo(r))
	}
	m.addDiskUsage(ctx, out)
	return out, nil
}

// GetSandbox describes one sandbox.
func (m *Manager) GetSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	return m.toInfoDisk(ctx, rec), nil
}

// GetSandboxByUUID describes one sandbox by its UUID.
func (m *Manager) GetSandboxByUUID(ctx context.Context, uuid string) (api.SandboxInfo, error) {
	rec, err := m.cfg.Store.GetSandboxByUUID(ctx, uuid)
	if errors.Is(err, errdefs.ErrNotFound) || err == nil && rec.Pool != "" {
		return api.SandboxInfo{}, fmt.Errorf("%w: no sandbox with uuid %q", errdefs.ErrNotFound, uuid)
	}
	if err != nil {
		return api.SandboxInfo{}, err
	}
	return m.toInfo(rec), nil
}

// SandboxLogs returns a sandbox's audit trail, oldest first.
func (m *Manager) SandboxLogs(ctx context.Context, name string) ([]api.LogEvent, error) {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	evs, err := m.cfg.Store.ListEvents(ctx, rec.UUID, 0)
	if err != nil {
		return nil, err
	}
	out := make([]api.LogEvent, 0, len(evs))
	for _, e := range evs {
		ev := api.LogEvent{Timestamp: e.Time, Event: e.Event, Sandbox: e.SandboxName}
		if len(e.Details) > 0 {
			json.Unmarshal(e.Details, &ev.Details)
		}
		out = append(out, ev)
	}
	return out, nil
}

// ListImages, ImportImage and RemoveImage delegate to the image store.
func (m *Manager) ListImages(ctx context.Context) ([]api.ImageInfo, error) {
	return m.cfg.Images.List(ctx)
}

// ImportImage imports a directory or tarball on the host as an image.
func (m *Manager) ImportImage(ctx context.Context, req api.ImportImageRequest) (api.ImageInfo, error) {
	return m.cfg.Images.Import(ctx, req.Name, req.Path)
}

// RemoveImage deletes an image from the store.
func (m *Manager) RemoveImage(ctx context.Context, name string) error {
	m.waitTeardowns(ctx)
	return m.cfg.Images.Remove(ctx, name)
}

// waitTeardowns waits (bounded by ctx and teardownWait) for sandbox
// removals still running in the background, so that an image removed
// right after its last sandbox is not refused as still mounted.
func (m *Manager) waitTeardowns(ctx context.Context) {
	done := make(chan struct{})
	go func() { m.teardowns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	case <-time.After(teardownWait):
	}
}

// PullImage, InspectImage, TagImage and PruneImages delegate to the image
// store too.
func (m *Manager) PullImage(ctx context.Context, req api.PullImageRequest, progress func(api.PullProgress)) (api.ImageInfo, error) {
	info, err := m.cfg.Images.Pull(ctx, req, progress)
	if p, ok := m.cfg.Observer.(PullObserver); ok {
		p.ObservePull(err)
	}
	return info, err
}

func (m *Manager) InspectImage(ctx context.Context, name string) (api.ImageDetails, error) {
	return m.cfg.Images.Inspect(ctx, name)
}

func (m *Manager) TagImage(ctx context.Context, req api.TagImageRequest) (api.ImageInfo, error) {
	return m.cfg.Images.Tag(ctx, req.Source, req.Target)
}

func (m *Manager) PruneImages(ctx context.Context) (api.PruneImagesResponse, error) {
	m.waitTeardowns(ctx)
	return m.cfg.Images.Prune(ctx)
}

// Backends lists the backends this daemon offers, by name, with their
// capabilities.
func (m *Manager) Backends(ctx context.Context) []api.BackendInfo {
	out := []api.BackendInfo{}
	for _, name := range m.backendNames() {
		b := m.cfg.Backends[name]
		c := b.Capabilities()
		info := api.BackendInfo{Name: name, Default: name == m.cfg.DefaultBackend, Isolation: c.Isolation,
			Pause: c.Pause, Checkpoint: c.Checkpoint, NetworkGateway: c.NetworkGateway}
		if pr, ok := b.(backend.PlatformReporter); ok {
			info.Platform = pr.Platform(ctx)
		}
		out = append(out, info)
	}
	return out
}

// Doctor reports what works on this host.
func (m *Manager) Doctor(ctx context.Context) []api.DoctorCheck {
	if m.cfg.Doctor == nil {
		return nil
	}
	return m.cfg.Doctor(ctx)
}

// SandboxChanges returns where a sandbox keeps its filesystem changes and
// its spec, for commit and export (see backend.ChangesReader). A backend
// that cannot hand them over is refused with errdefs.ErrNotImplemented,
// naming it.
func (m *Manager) SandboxChanges(ctx context.Context, name string) (backend.Changes, *backend.Spec, error) {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return backend.Changes{}, nil, err
	}
	cr, ok := m.cfg.Backends[rec.Backend].(backend.ChangesReader)
	if !ok {
		return backend.Changes{}, nil, fmt.Errorf("%w: sandbox %s runs on the %s backend, which cannot hand over its filesystem changes (commit and export need the container backend)",
			errdefs.ErrNotImplemented, rec.Name, rec.Backend)
	}
	spec, err := backend.ReadSpec(m.stateDir(rec.UUID))
	if err != nil {
		return backend.Changes{}, nil, fmt.Errorf("reading the spec of sandbox %s: %w", rec.Name, err)
	}
	ch, err := cr.Changes(spec)
	return ch, spec, err
}

// PullObserver is an Observer that also counts image pulls
// (internal/metrics implements it).
type PullObserver interface{ ObservePull(err error) }
