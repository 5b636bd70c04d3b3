package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/internal/secrets"
	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Warm pools, the Manager's side. A pooled sandbox is an ordinary sandbox
// row whose Pool column holds its key: started with a neutral host name,
// the image's environment and a deny-all gateway that has an interception
// CA, and never handed to anyone. Lists and lookups by name do not see it.
// A create request that matches a pool claims one instead of starting a
// sandbox: the store row takes the caller's name, labels, expiry and spec
// in one statement, the spec is written beside it (so a restart starts
// with the caller's settings), and the supervisor binds the host name,
// environment, policy and secrets to the running sandbox. A claimed
// sandbox is the caller's from then on and is removed, never returned,
// after use. internal/pool decides how many to keep and makes them through
// CreatePooled.

// WarmPools hands out pooled sandboxes; internal/pool implements it.
type WarmPools interface {
	// Take removes a ready sandbox from the pool of key and returns its
	// UUID; false when the pool is empty or does not exist.
	Take(key api.PoolKey) (uuid string, ok bool)
	// Return gives back a sandbox Take handed out whose claim failed
	// before anything of the caller's was bound to it.
	Return(key api.PoolKey, uuid string)
}

// pooledNamePrefix starts the names of pooled sandboxes. No caller can
// choose such a name: sandbox names start with a letter or a digit.
const pooledNamePrefix = ".pool-"

// pooledHostname is a pooled sandbox's host name until its claim.
const pooledHostname = "sandbox"

// maxClaimAttempts bounds how many pooled sandboxes one create tries
// before it falls back to a cold start.
const maxClaimAttempts = 3

// SetPools makes CreateSandbox claim from p. Call it before serving.
func (m *Manager) SetPools(p WarmPools) { m.pools = p }

// ResolvePoolKey fills k's empty fields with the defaults a create request
// gets and checks them: the key of the sandboxes such a request makes.
func (m *Manager) ResolvePoolKey(ctx context.Context, k api.PoolKey) (api.PoolKey, error) {
	spec, rec, err := m.buildSpecOnly(ctx, poolRequest(k))
	if err != nil {
		return api.PoolKey{}, err
	}
	return keyOf(spec, rec), nil
}

func poolRequest(k api.PoolKey) api.CreateSandboxRequest {
	return api.CreateSandboxRequest{Name: "pool", Image: k.Image, Backend: k.Backend, Profile: k.Profile,
		MemoryMB: k.MemoryMB, VCPUs: k.VCPUs, DiskMB: k.DiskMB}
}

func keyOf(spec *backend.Spec, rec store.Sandbox) api.PoolKey {
	return api.PoolKey{Backend: spec.Backend, Image: rec.Image, Profile: rec.Profile,
		MemoryMB: spec.Resources.MemoryMB, VCPUs: spec.Resources.VCPUs, DiskMB: spec.Resources.DiskMB}
}

func poolColumn(k api.PoolKey) string {
	b, _ := json.Marshal(k)
	return string(b)
}

// CreatePooled makes and starts one sandbox for the pool of key (a
// resolved key) and returns its UUID. A sandbox that fails to start is
// removed: a pool never holds a half-made sandbox.
func (m *Manager) CreatePooled(ctx context.Context, key api.PoolKey) (string, error) {
	spec, rec, _, err := m.buildSpec(ctx, poolRequest(key))
	if err != nil {
		return "", err
	}
	if got := keyOf(spec, rec); got != key {
		return "", fmt.Errorf("%w: pool %s resolves to %s now (was the image re-tagged?)", errdefs.ErrFailedPrecondition, key, got)
	}
	name := pooledNamePrefix + strings.ReplaceAll(spec.ID, "-", "")
	spec.Name, spec.Hostname, rec.Name = name, pooledHostname, name
	if spec.Gateway != nil {
		spec.Gateway.Policy = policy.Policy{Profile: policy.Restrictive}
		spec.Gateway.InterceptionCA = true
	}
	rec.Pool = poolColumn(key)
	if rec.Spec, err = json.Marshal(spec); err != nil {
		return "", err
	}
	unlock := m.locks.Lock(spec.ID)
	defer unlock()
	if _, err := m.cfg.Store.CreateSandbox(ctx, rec); err != nil {
		return "", err
	}
	dir := spec.StateDir
	if err := mkStateDir(dir); err == nil {
		err = backend.WriteSpec(dir, spec)
	}
	if err == nil {
		err = m.startLocked(ctx, spec.ID, name)
	}
	if err == nil {
		err = m.warmUp(ctx, spec.ID)
	}
	if err != nil {
		m.removeLocked(context.WithoutCancel(ctx), spec.ID, name)
		return "", err
	}
	return spec.ID, nil
}

// warmUp runs `true` once in a pooled sandbox, so that its first caller
// does not pay for the first exec: the agent's first fork and exec, the
// image's files in the page cache and, in a microVM under software
// emulation, guest code translated for the first time (a first exec there
// took 400 ms, the next ones 80). It is no caller's command. Whether true
// exists in the image does not matter; an agent that does not answer does.
func (m *Manager) warmUp(ctx context.Context, uuid string) error {
	l := m.getLive(uuid)
	if l == nil {
		return fmt.Errorf("%w: pooled sandbox %s stopped", errdefs.ErrUnavailable, uuid)
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	c, err := l.agentClient(ctx)
	if err != nil {
		return err
	}
	p, err := c.Exec(ctx, agentproto.ExecRequest{Argv: []string{"true"}})
	if err != nil {
		return fmt.Errorf("warming up pooled sandbox %s: %w", uuid, err)
	}
	defer p.Close()
	_, err = p.Wait()
	return err
}

// RemovePooled removes a pooled sandbox that was never claimed. A claimed
// one is the caller's and is left alone (errdefs.ErrNotFound).
func (m *Manager) RemovePooled(ctx context.Context, uuid string) error {
	unlock := m.locks.Lock(uuid)
	defer unlock()
	rec, err := m.cfg.Store.GetSandboxByUUID(ctx, uuid)
	if err != nil {
		return err
	}
	if rec.Pool == "" {
		return fmt.Errorf("%w: sandbox %s is no longer pooled", errdefs.ErrNotFound, uuid)
	}
	return m.removePooledLocked(ctx, rec)
}

// removePooledLocked removes a pooled sandbox whether or not the daemon
// follows its supervisor (one found at daemon start may be mid-start).
func (m *Manager) removePooledLocked(ctx context.Context, rec store.Sandbox) error {
	if m.getLive(rec.UUID) == nil {
		sctx, cancel := context.WithTimeout(ctx, stopTimeout)
		supervisor.Dial(m.stateDir(rec.UUID)).Stop(sctx)
		cancel()
	}
	return m.removeLocked(ctx, rec.UUID, rec.Name)
}

// PooledSandboxes lists the running pooled sandboxes by pool, for
// internal/pool to take over at daemon start (after Recover).
func (m *Manager) PooledSandboxes(ctx context.Context) (map[api.PoolKey][]string, error) {
	recs, err := m.cfg.Store.ListSandboxes(ctx)
	if err != nil {
		return nil, err
	}
	out := map[api.PoolKey][]string{}
	for _, rec := range recs {
		if rec.Pool == "" || rec.Status != api.StatusRunning || m.getLive(rec.UUID) == nil {
			continue
		}
		var k api.PoolKey
		if json.Unmarshal([]byte(rec.Pool), &k) != nil {
			continue
		}
		out[k] = append(out[k], rec.UUID)
	}
	return out, nil
}

// poolable reports whether req may be served from a pool: nothing it asks
// for must be bound before the sandbox starts.
func poolable(req api.CreateSandboxRequest, spec *backend.Spec) bool {
	return !req.NoPool && (req.Start == nil || *req.Start) && len(spec.Mounts) == 0 && len(spec.Volumes) == 0 &&
		(spec.Gateway == nil || len(spec.Gateway.Publish) == 0)
}

// sameStart reports whether a sandbox started from pooled would be the one
// want describes, apart from what a claim binds (and its limits, when
// resize says the claim can change them).
func sameStart(pooled, want *backend.Spec, resize bool) bool {
	return pooled.Backend == want.Backend && pooled.AgentPath == want.AgentPath &&
		reflect.DeepEqual(pooled.Rootfs, want.Rootfs) && (resize || pooled.Resources == want.Resources) &&
		pooled.Resources.DiskMB == want.Resources.DiskMB &&
		reflect.DeepEqual(pooled.Security, want.Security) && pooled.Workdir == want.Workdir &&
		pooled.User == want.User && reflect.DeepEqual(pooled.Cmd, want.Cmd) &&
		len(pooled.Mounts) == 0 && len(want.Mounts) == 0 && len(pooled.Volumes) == 0 && len(want.Volumes) == 0 && (pooled.Gateway == nil) == (want.Gateway == nil)
}

// claim serves a create request from a pool. ok false means no pooled
// sandbox could serve it (none ready, or the claims failed) and the
// caller creates it cold; ok true with an error is the request's answer
// (a taken name, say).
func (m *Manager) claim(ctx context.Context, req api.CreateSandboxRequest, spec *backend.Spec, rec store.Sandbox, inline []secrets.Binding, ph *phases) (api.SandboxInfo, bool, error) {
	if m.pools == nil || !poolable(req, spec) {
		return api.SandboxInfo{}, false, nil
	}
	for _, key := range m.claimKeys(spec, rec) {
		for range maxClaimAttempts {
			id, ok := m.pools.Take(key)
			if !ok {
				break
			}
			info, done, err := m.claimOne(ctx, key, id, req, spec, rec, inline, ph)
			if done {
				return info, true, err
			}
			if err != nil {
				m.log.Warn("claiming a pooled sandbox failed; trying another", "pool", key.String(), "err", err)
			}
		}
	}
	return api.SandboxInfo{}, false, nil
}

// claimKeys are the pools that may serve a request, best first: its own
// key and, on a backend that changes limits in place, the key of the
// default resources (the claim then resizes the sandbox).
func (m *Manager) claimKeys(spec *backend.Spec, rec store.Sandbox) []api.PoolKey {
	key := keyOf(spec, rec)
	keys := []api.PoolKey{key}
	def, err := ResolveResources(0, 0, spec.Resources.DiskMB)
	if err == nil && m.resizes(spec.Backend) && (key.MemoryMB != def.MemoryMB || key.VCPUs != def.VCPUs) {
		dk := key
		dk.MemoryMB, dk.VCPUs = def.MemoryMB, def.VCPUs
		keys = append(keys, dk)
	}
	return keys
}

// resizes reports whether the backend changes a running sandbox's limits.
func (m *Manager) resizes(backendName string) bool {
	b, ok := m.cfg.Backends[backendName]
	return ok && b.Capabilities().Resize
}

// claimOne claims the pooled sandbox id for req. done false means the
// sandbox could not serve (it is removed, or returned when untouched) and
// another may be tried.
func (m *Manager) claimOne(ctx context.Context, key api.PoolKey, id string, req api.CreateSandboxRequest,
	want *backend.Spec, rec store.Sandbox, inline []secrets.Binding, ph *phases) (api.SandboxInfo, bool, error) {
	started := time.Now()
	unlock := m.locks.Lock(id)
	defer unlock()
	member, err := m.cfg.Store.GetSandboxByUUID(ctx, id)
	if err != nil {
		return api.SandboxInfo{}, false, err
	}
	pooled, err := specOf(member.Spec)
	l := m.getLive(id)
	if err != nil || member.Pool == "" || member.Status != api.StatusRunning || l == nil || !sameStart(pooled, want, m.resizes(want.Backend)) {
		if member.Pool != "" {
			m.removePooledLocked(context.WithoutCancel(ctx), member)
		}
		return api.SandboxInfo{}, false, fmt.Errorf("pooled sandbox %s cannot serve (status %s)", id, member.Status)
	}
	spec := rebind(want, pooled)
	specJSON, err := json.Marshal(spec)
	if err != nil {
		m.pools.Return(key, id)
		return api.SandboxInfo{}, true, err
	}
	err = m.cfg.Store.ClaimSandbox(ctx, id, store.Claim{
		Name: req.Name, Labels: rec.Labels, Ephemeral: rec.Ephemeral, ExpiresAt: rec.ExpiresAt, Spec: specJSON,
		VCPUs: rec.VCPUs, MemoryMB: rec.MemoryMB,
	})
	if err != nil {
		// Nothing of the caller's is bound yet: the sandbox is as fresh
		// as it was.
		m.pools.Return(key, id)
		return api.SandboxInfo{}, true, fmt.Errorf("sandbox %q: %w", req.Name, err)
	}
	ph.mark("record")
	// From here the sandbox is the caller's: a failure removes it.
	fail := func(err error) (api.SandboxInfo, bool, error) {
		m.removeLocked(context.WithoutCancel(ctx), id, req.Name)
		return api.SandboxInfo{}, false, err
	}
	dir := spec.StateDir
	if err := m.storeInlineSecrets(id, inline); err != nil {
		return fail(err)
	}
	if err := backend.WriteSpec(dir, spec); err != nil {
		return fail(err)
	}
	values, err := m.secretValues(spec)
	if err != nil {
		return fail(err)
	}
	ph.mark("state")
	creq := supervisor.ClaimRequest{Hostname: spec.Hostname, Env: addedEnv(pooled.Env, spec.Env)}
	if spec.Resources != pooled.Resources {
		creq.Resources = &spec.Resources
	}
	if spec.Gateway != nil {
		creq.Policy, creq.Secrets, creq.Values = &spec.Gateway.Policy, spec.Gateway.Secrets, values
	}
	cctx, cancel := context.WithTimeout(ctx, startTimeout)
	err = l.sup.Claim(cctx, creq)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("binding the caller's settings: %w", err))
	}
	ph.mark("bind")
	l.setName(req.Name)
	m.event(id, req.Name, "sandbox_created", map[string]any{"image": rec.Image, "backend": rec.Backend, "profile": rec.Profile,
		"pool": key.String()})
	m.event(id, req.Name, "sandbox_started", map[string]any{"took_ms": time.Since(started).Milliseconds(), "claimed": true})
	info, err := m.info(ctx, id)
	ph.log(m.log, "sandbox claimed from a pool", "sandbox", req.Name, "pool", key.String())
	return info, true, err
}

// addedEnv returns the entries of want that have not the same value in
// have: what a claim must set (the image's own environment is there
// already; a claim only adds to it).
func addedEnv(have, want []string) []string {
	set := make(map[string]bool, len(have))
	for _, kv := range have {
		set[kv] = true
	}
	var out []string
	for _, kv := range want {
		if !set[kv] {
			out = append(out, kv)
		}
	}
	return out
}

// rebind returns want moved onto the pooled sandbox: its ID and state
// directory, and the vault names of inline secrets scoped to that ID.
func rebind(want, pooled *backend.Spec) *backend.Spec {
	s := *want
	oldID := s.ID
	s.ID, s.StateDir = pooled.ID, pooled.StateDir
	if want.Gateway != nil {
		g := *want.Gateway
		g.InterceptionCA = pooled.Gateway != nil && pooled.Gateway.InterceptionCA
		g.Secrets = make([]backend.SecretRef, len(want.Gateway.Secrets))
		for i, r := range want.Gateway.Secrets {
			if r.VaultName == scopedName(oldID, r.Name) {
				r.VaultName = scopedName(s.ID, r.Name)
			}
			g.Secrets[i] = r
		}
		s.Gateway = &g
	}
	return &s
}
