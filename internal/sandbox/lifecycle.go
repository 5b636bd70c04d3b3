package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agentkernel/agentkernel/internal/backend"
	"os"
	"sort"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/agentkernel/agentkernel/internal/faultpoint"
	"github.com/agentkernel/agentkernel/internal/secrets"
	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// CreateSandbox validates req, records the sandbox and, unless req.Start is
// false, starts it. A sandbox that fails to start stays, marked failed, so
// its console log can be read; an ephemeral one is removed. With a
// source_url the started sandbox then clones it into SourceDir, through
// its gateway; a failed clone removes the sandbox.
func (m *Manager) CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error) {
	info, err := m.createSandbox(ctx, req, nil)
	if err != nil || req.SourceURL == "" {
		return info, err
	}
	if err := m.cloneSource(ctx, req.Name, req.SourceURL, req.SourceRef); err != nil {
		if rerr := m.RemoveSandbox(context.WithoutCancel(ctx), req.Name); rerr != nil {
			return api.SandboxInfo{}, fmt.Errorf("sandbox %s: %w; removing it also failed: %v", req.Name, err, rerr)
		}
		return api.SandboxInfo{}, fmt.Errorf("sandbox %s: %w; the sandbox was removed", req.Name, err)
	}
	return info, nil
}

// createSandbox is CreateSandbox without the source clone; a non-nil
// restore makes the sandbox continue a memory snapshot (never a pool
// claim: a pooled sandbox has processes of its own).
func (m *Manager) createSandbox(ctx context.Context, req api.CreateSandboxRequest, restore *backend.RestoreSpec) (_ api.SandboxInfo, retErr error) {
	ctx, span := startSpan(ctx, "sandbox.create", req.Name)
	defer func() { endSpan(span, retErr) }()
	ph := newPhases()
	spec, rec, inline, err := m.buildSpec(ctx, req)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	if restore != nil {
		if !m.cfg.Backends[spec.Backend].Capabilities().Checkpoint {
			return api.SandboxInfo{}, m.noMemorySnapshots(spec.Backend)
		}
		spec.Restore = restore
		if rec.Spec, err = json.Marshal(spec); err != nil {
			return api.SandboxInfo{}, err
		}
	}
	ph.mark("spec")
	if err := m.vols.check(spec); err != nil {
		// Refused before the record exists: nothing is created. Start
		// claims again, which settles a race with another start.
		return api.SandboxInfo{}, fmt.Errorf("sandbox %q: %w", req.Name, err)
	}
	if restore == nil {
		if info, ok, err := m.claim(ctx, req, spec, rec, inline, ph); ok {
			span.SetAttributes(attribute.Bool("agentkernel.pool_claim", true))
			m.observe("claim", spec.Backend, ph.start, err)
			return info, err
		}
	}
	defer func() { m.observe("create", spec.Backend, ph.start, retErr) }()
	unlock := m.locks.Lock(spec.ID)
	defer unlock()
	if _, err := m.cfg.Store.CreateSandbox(ctx, rec); err != nil {
		return api.SandboxInfo{}, fmt.Errorf("sandbox %q: %w", req.Name, err)
	}
	ph.mark("record")
	dir := spec.StateDir
	if err := mkStateDir(dir); err == nil {
		err = backend.WriteSpec(dir, spec)
	}
	if err == nil {
		err = m.storeInlineSecrets(spec.ID, inline)
	}
	if err != nil {
		m.cfg.Store.DeleteSandbox(context.WithoutCancel(ctx), spec.ID)
		m.deleteSandboxSecrets(spec.ID)
		os.RemoveAll(dir)
		return api.SandboxInfo{}, fmt.Errorf("sandbox %q: preparing its state: %w", req.Name, err)
	}
	m.event(spec.ID, spec.Name, "sandbox_created", map[string]any{"image": rec.Image, "backend": rec.Backend, "profile": rec.Profile})
	ph.mark("state")
	faultpoint.Hit(ctx, faultpoint.CreateRecorded)
	if req.Start == nil || *req.Start {
		if err := m.startLocked(ctx, spec.ID, spec.Name); err != nil {
			if req.Ephemeral {
				m.removeLocked(context.WithoutCancel(ctx), spec.ID, spec.Name)
			}
			return api.SandboxInfo{}, err
		}
		ph.mark("start")
	}
	info, err := m.info(ctx, spec.ID)
	ph.log(m.log, "sandbox created cold", "sandbox", spec.Name)
	return info, err
}

// buildSpec turns a request into a Spec and its store row, refusing what it
// cannot honour. It also returns the secret values given inline, for the
// vault.
func (m *Manager) buildSpec(ctx context.Context, req api.CreateSandboxRequest) (*backend.Spec, store.Sandbox, []secrets.Binding, error) {
	spec, rec, err := m.buildSpecOnly(ctx, req)
	if err != nil {
		return nil, rec, nil, err
	}
	inline, err := m.resolveNetwork(req, spec)
	if err != nil {
		return nil, rec, nil, err
	}
	if rec.Spec, err = json.Marshal(spec); err != nil {
		return nil, rec, nil, err
	}
	return spec, rec, inline, nil
}

func (m *Manager) buildSpecOnly(ctx context.Context, req api.CreateSandboxRequest) (*backend.Spec, store.Sandbox, error) {
	var zero store.Sandbox
	if err := ValidateName(req.Name); err != nil {
		return nil, zero, err
	}
	if len(req.SecretFiles) > 0 {
		return nil, zero, fmt.Errorf("%w: secret_files are not supported; bind secrets to hosts with secrets (--secret KEY:HOST); nothing was created", errdefs.ErrNotImplemented)
	}
	if err := validateSource(req.SourceURL, req.SourceRef, req.Start == nil || *req.Start); err != nil {
		return nil, zero, err
	}
	backendName, _, err := api.UpstreamBackend(req.Backend)
	if err != nil {
		return nil, zero, err
	}
	if backendName == "" {
		backendName = m.cfg.DefaultBackend
	}
	if _, ok := m.cfg.Backends[backendName]; !ok {
		return nil, zero, fmt.Errorf("%w: unknown backend %q (available: %s)", errdefs.ErrInvalidArgument, backendName, strings.Join(m.backendNames(), ", "))
	}
	res, err := ResolveResources(req.MemoryMB, req.VCPUs, req.DiskMB)
	if err != nil {
		return nil, zero, err
	}
	if res.DiskMB, err = fitDisk(m.cfg.Layout.SandboxesDir(), res.DiskMB, req.DiskMB != 0); err != nil {
		return nil, zero, err
	}
	sec, err := ResolveProfile(req.Profile)
	if err != nil {
		return nil, zero, err
	}
	ttl, err := ParseTTL(req.TTL)
	if err != nil {
		return nil, zero, err
	}
	var mounts []backend.Mount
	for _, d := range req.Dirs {
		mnt, err := ParseDirMount(d)
		if err != nil {
			return nil, zero, err
		}
		mounts = append(mounts, mnt)
	}
	vols, err := m.resolveVolumes(req.Volumes, backendName, mounts)
	if err != nil {
		return nil, zero, err
	}
	imageName := req.Image
	if imageName == "" {
		imageName = "host"
	}
	img, err := m.cfg.Images.Resolve(ctx, imageName)
	if err != nil {
		return nil, zero, err
	}
	id := newUUID()
	spec := &backend.Spec{
		ID: id, Name: req.Name, Backend: backendName,
		StateDir: m.stateDir(id), AgentPath: m.cfg.AgentPath,
		Rootfs: img.Rootfs, Env: img.Env, Workdir: img.Workdir, User: img.User, Cmd: img.Cmd,
		Hostname: req.Name, Resources: res, Security: sec, Mounts: mounts, Volumes: vols,
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, zero, err
	}
	rec := store.Sandbox{
		UUID: id, Name: req.Name, Status: api.StatusCreated, Backend: backendName,
		Image: img.Name, Profile: sec.Profile, Spec: specJSON,
		VCPUs: res.VCPUs, MemoryMB: res.MemoryMB, Labels: req.Labels, Ephemeral: req.Ephemeral,
	}
	if ttl > 0 {
		exp := time.Now().Add(ttl).UTC()
		rec.ExpiresAt = &exp
	}
	return spec, rec, nil
}

func (m *Manager) backendNames() []string {
	var names []string
	for n := range m.cfg.Backends {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// StartSandbox starts a stopped or failed sandbox. Starting a running one
// is a no-op.
func (m *Manager) StartSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	unlock := m.locks.Lock(rec.UUID)
	defer unlock()
	if m.getLive(rec.UUID) == nil {
		if err := m.startLocked(ctx, rec.UUID, rec.Name); err != nil {
			return api.SandboxInfo{}, err
		}
	}
	return m.info(ctx, rec.UUID)
}

// startLocked spawns the sandbox's supervisor and connects to its agent.
// The caller holds the sandbox's lock.
func (m *Manager) startLocked(ctx context.Context, uuid, name string) (retErr error) {
	dir := m.stateDir(uuid)
	if err := m.claimVolumes(ctx, uuid, false); err != nil {
		// Refused before anything ran: the sandbox keeps its status.
		return fmt.Errorf("sandbox %s cannot start: %w", name, err)
	}
	defer func() {
		if retErr != nil {
			// Every failure below has stopped the supervisor, or never
			// had one, and so the volumes are unmounted.
			m.vols.release(uuid)
		}
	}()
	if err := m.setStatus(ctx, uuid, name, api.StatusStarting, ""); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	args := append(append([]string{}, m.cfg.SupervisorArgs...), dir)
	started := time.Now()
	secretValues, err := m.sandboxSecrets(dir)
	if err != nil {
		err = fmt.Errorf("sandbox %s failed to start: %w", name, err)
		m.recordStatus(context.WithoutCancel(ctx), uuid, name, api.StatusFailed, err.Error())
		return err
	}
	exited, err := supervisor.Spawn(ctx, dir, supervisor.SpawnOptions{
		Exe: m.cfg.SupervisorExe, Args: args, Env: m.cfg.SupervisorEnv, Secrets: secretValues,
	})
	if err != nil {
		// A supervisor killed mid-start cannot undo what it began.
		m.cleanup(context.WithoutCancel(ctx), uuid)
		err = fmt.Errorf("sandbox %s failed to start: %w", name, err)
		m.recordStatus(context.WithoutCancel(ctx), uuid, name, api.StatusFailed, err.Error())
		m.event(uuid, name, "sandbox_failed", map[string]any{"error": err.Error()})
		return err
	}
	faultpoint.Hit(ctx, faultpoint.CreateSpawned)
	l := newLiveSandbox(uuid, name, supervisor.Dial(dir))
	if _, err := l.agentClient(ctx); err != nil {
		cctx := context.WithoutCancel(ctx)
		err = m.startFailure(cctx, l, name, err)
		l.sup.Stop(cctx)
		// A supervisor that died cannot stop what it started: the
		// runtime's container (or VM) would run on, unlisted as running.
		m.cleanup(cctx, uuid)
		m.recordStatus(cctx, uuid, name, api.StatusFailed, err.Error())
		m.event(uuid, name, "sandbox_failed", map[string]any{"error": err.Error()})
		return err
	}
	if err := m.setStatus(ctx, uuid, name, api.StatusRunning, ""); err != nil {
		l.closeAgent()
		l.sup.Stop(context.WithoutCancel(ctx))
		return err
	}
	m.watch(l, exited)
	m.event(uuid, name, "sandbox_started", map[string]any{"took_ms": time.Since(started).Milliseconds()})
	return nil
}

// startFailure says why a sandbox whose supervisor was spawned never had
// its agent answer: the supervisor died (and why, if it recorded it), or it
// runs and the agent does not answer.
func (m *Manager) startFailure(ctx context.Context, l *liveSandbox, name string, err error) error {
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, serr := l.sup.Status(sctx); serr != nil {
		why := "its supervisor died while it started"
		if e, _ := supervisor.ReadExit(m.stateDir(l.uuid)); e != nil && e.Error != "" {
			why += " (" + e.Error + ")"
		}
		return fmt.Errorf("%w: sandbox %s failed to start: %s", errdefs.ErrUnavailable, name, why)
	}
	return fmt.Errorf("sandbox %s started but its agent does not answer: %w", name, err)
}

// watch follows a live sandbox until it ends on its own, then records how.
// The daemon reaps the supervisor process it spawned through exited (nil
// for an adopted supervisor).
func (m *Manager) watch(l *liveSandbox, exited <-chan struct{}) {
	ctx, cancel := context.WithCancel(m.ctx)
	l.stopWatch = cancel
	m.setLive(l)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			st, err := l.sup.Wait(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil && st.State != "exited" {
				continue
			}
			reason := "the sandbox's supervisor died"
			if err == nil && st.Exit != nil && st.Exit.Error != "" {
				reason = st.Exit.Error
			} else if e, _ := supervisor.ReadExit(m.stateDir(l.uuid)); e != nil && e.Error != "" {
				reason = e.Error
			}
			if err != nil && exited != nil {
				<-exited
			}
			m.onUnexpectedExit(l, reason)
			return
		}
	}()
}

// onUnexpectedExit marks a sandbox that ended on its own as failed and
// releases what its supervisor may have left.
func (m *Manager) onUnexpectedExit(l *liveSandbox, reason string) {
	unlock := m.locks.Lock(l.uuid)
	defer unlock()
	if m.getLive(l.uuid) != l {
		return // stopped or removed meanwhile
	}
	m.dropLive(l.uuid)
	m.vols.releasing(l.uuid) // released by the cleanup below
	l.closeAgent()
	ctx := context.WithoutCancel(m.ctx)
	m.log.Warn("sandbox ended unexpectedly", "sandbox", l.Name(), "reason", reason)
	m.recordStatus(ctx, l.uuid, l.Name(), api.StatusFailed, reason)
	m.event(l.uuid, l.Name(), "sandbox_failed", map[string]any{"error": reason})
	m.cleanup(ctx, l.uuid)
}

// cleanup releases a sandbox's host resources through its backend, from
// its spec on disk. Safe on a sandbox that holds nothing.
func (m *Manager) cleanup(ctx context.Context, uuid string) {
	dir := m.stateDir(uuid)
	spec, err := backend.ReadSpec(dir)
	if err != nil {
		return
	}
	sup := supervisor.Dial(dir)
	if _, err := sup.Status(ctx); err != nil {
		sup.Kill(ctx)
	}
	if b, ok := m.cfg.Backends[spec.Backend]; ok {
		if err := b.Cleanup(ctx, spec); err != nil {
			m.log.Error("cleaning up sandbox", "sandbox", spec.Name, "err", err)
		}
	}
	// Its volumes are unmounted now (or its supervisor is dead): others
	// may have them.
	m.vols.release(uuid)
}

// destroy is cleanup for a removed sandbox: it also releases what its
// backend keeps across stops (backend.Destroyer).
func (m *Manager) destroy(ctx context.Context, uuid string) {
	m.cleanup(ctx, uuid)
	spec, err := backend.ReadSpec(m.stateDir(uuid))
	if err != nil {
		return
	}
	if d, ok := m.cfg.Backends[spec.Backend].(backend.Destroyer); ok {
		if err := d.Destroy(ctx, spec); err != nil {
			m.log.Error("destroying sandbox", "sandbox", spec.Name, "err", err)
		}
	}
}

// StopSandbox stops a running sandbox gracefully; its files are kept.
func (m *Manager) StopSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	unlock := m.locks.Lock(rec.UUID)
	defer unlock()
	if err := m.stopLocked(ctx, rec.UUID, rec.Name); err != nil {
		return api.SandboxInfo{}, err
	}
	return m.info(ctx, rec.UUID)
}

func (m *Manager) stopLocked(ctx context.Context, uuid, name string) error {
	l := m.dropLive(uuid)
	if l == nil {
		return nil
	}
	l.stopWatch()
	l.closeAgent()
	m.vols.releasing(uuid) // released by the cleanup below
	m.recordStatus(ctx, uuid, name, api.StatusStopping, "")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if _, err := l.sup.Stop(sctx); err != nil {
		m.log.Warn("graceful stop failed; forcing", "sandbox", name, "err", err)
	}
	m.cleanup(sctx, uuid)
	m.event(uuid, name, "sandbox_stopped", nil)
	return m.setStatus(sctx, uuid, name, api.StatusStopped, "")
}

// RemoveSandbox stops a sandbox and deletes it with its files. The record
// goes at once; the teardown finishes in the background, so the name is
// free immediately. A teardown cut short by a daemon crash is finished by
// the next daemon's Recover, which sweeps state directories without a
// record.
func (m *Manager) RemoveSandbox(ctx context.Context, name string) error {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return err
	}
	started := time.Now()
	unlock := m.locks.Lock(rec.UUID)
	defer unlock()
	err = m.removeLocked(ctx, rec.UUID, rec.Name)
	m.observe("remove", rec.Backend, started, err)
	return err
}

func (m *Manager) removeLocked(ctx context.Context, uuid, name string) error {
	l := m.dropLive(uuid)
	if l != nil {
		l.stopWatch()
		l.closeAgent()
	}
	// Its volumes are released once the teardown below has unmounted
	// them; a start that needs one meanwhile waits for that.
	m.vols.releasing(uuid)
	if err := m.cfg.Store.DeleteSandbox(ctx, uuid); err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			// Another remove got here first (it looked the name up before
			// this one took the lock) and has scheduled the teardown: one
			// caller is told "removed", the others that it is gone.
			return fmt.Errorf("%w: no sandbox named %q (it was just removed)", errdefs.ErrNotFound, name)
		}
		return err
	}
	m.event(uuid, name, "sandbox_removed", nil)
	m.wg.Add(1)
	m.teardowns.Add(1)
	go func() {
		defer m.wg.Done()
		defer m.teardowns.Done()
		faultpoint.Hit(m.ctx, faultpoint.RemoveRecorded)
		unlock := m.locks.Lock(uuid)
		defer unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), stopTimeout)
		defer cancel()
		if l != nil {
			l.sup.Stop(ctx)
		}
		m.destroy(ctx, uuid)
		m.deleteSandboxSecrets(uuid)
		m.keepSandboxAudit(uuid, name)
		if err := os.RemoveAll(m.stateDir(uuid)); err != nil {
			m.log.Error("removing sandbox files", "sandbox", name, "err", err)
		}
	}()
	return nil
}

// ExtendSandbox pushes a sandbox's expiry back by the given duration (from
// now if it had none).
func (m *Manager) ExtendSandbox(ctx context.Context, name string, by time.Duration) (api.SandboxInfo, error) {
	if by <= 0 || by > maxTTL {
		return api.SandboxInfo{}, fmt.Errorf("%w: extend by %s: must be positive and at most 365 days", errdefs.ErrInvalidArgument, by)
	}
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	base := time.Now()
	if rec.ExpiresAt != nil && rec.ExpiresAt.After(base) {
		base = *rec.ExpiresAt
	}
	exp := base.Add(by).UTC()
	if err := m.cfg.Store.SetSandboxExpiry(ctx, rec.UUID, &exp); err != nil {
		return api.SandboxInfo{}, err
	}
	m.event(rec.UUID, rec.Name, "sandbox_extended", map[string]any{"expires_at": exp})
	return m.info(ctx, rec.UUID)
}
