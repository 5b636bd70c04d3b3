package opencodeproxy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/internal/agents"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// The sandbox: OpenCode's agent definition, the resources of an agent's
// sandbox, and its server's port inside.
const (
	serverPort = 3000
	memoryMB   = 2048
	vcpus      = 2
	// labelProxy marks the sandboxes the proxy made (the only ones it
	// re-adopts or removes).
	labelProxy      = "agentkernel.proxy"
	labelProxyValue = "opencode"
)

var agent = agents.OpenCode

// probeEvery is the pause between health checks of a starting server.
const probeEvery = 250 * time.Millisecond

// provision returns a ready server: the running sandbox's, re-adopted, or
// a new sandbox's. What it creates and cannot bring up it removes.
func (p *Proxy) provision(ctx context.Context) (*upstream, error) {
	log := p.log.With("sandbox", SandboxName)
	image := agent.Image()
	if _, err := p.sb.InspectImage(ctx, image); errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("%w: the %s image %s is not built yet: run agentkernel setup --agents %s",
			errdefs.ErrUnavailable, agent.Title, image, agent.Name)
	} else if err != nil {
		return nil, err
	}
	key, err := p.keyBinding(ctx)
	if err != nil {
		return nil, err
	}
	if up, err := p.adopt(ctx); up != nil || err != nil {
		return up, err
	}
	log.Info("opencode proxy: creating its sandbox", "image", image)
	info, err := p.sb.CreateSandbox(ctx, api.CreateSandboxRequest{
		Name: SandboxName, Image: image, MemoryMB: memoryMB, VCPUs: vcpus,
		Labels:  map[string]string{"agentkernel.agent": agent.Name, labelProxy: labelProxyValue},
		Network: &api.NetworkPolicy{Presets: []string{agent.Preset}},
		Publish: []string{"0:" + strconv.Itoa(serverPort)},
		Secrets: []string{key},
	})
	if err != nil {
		p.removeOurs(ctx, "") // a sandbox that failed to start stays, marked failed
		return nil, fmt.Errorf("creating sandbox %s: %w", SandboxName, err)
	}
	up, err := p.startServer(ctx, info)
	if err != nil {
		p.removeOurs(ctx, info.UUID)
		return nil, err
	}
	return up, nil
}

// keyBinding binds OpenCode's API key from the daemon's vault, by the
// first of its variable names the vault holds (as `run --agent` does,
// but the daemon has no client environment to fall back on).
func (p *Proxy) keyBinding(ctx context.Context) (string, error) {
	k := agent.Key
	list, err := p.sb.ListSecrets(ctx)
	if err != nil {
		return "", err
	}
	have := map[string]bool{}
	for _, s := range list {
		have[s.Name] = true
	}
	for _, v := range k.Vars {
		if have[v] {
			return k.Binding(v), nil
		}
	}
	return "", fmt.Errorf("%w: no API key for %s in the daemon's vault: store it with: agentkernel secret set %s",
		errdefs.ErrUnavailable, agent.Title, k.Vars[0])
}

// adopt returns the server of an existing sandbox of the proxy's when it
// runs and answers (the daemon restarted); an existing one that does not
// it removes. A sandbox of that name that is not the proxy's is an error.
func (p *Proxy) adopt(ctx context.Context) (*upstream, error) {
	info, err := p.sb.GetSandbox(ctx, SandboxName)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !ours(info) {
		return nil, errNotOurs(errdefs.ErrAlreadyExists)
	}
	if info.Status == api.StatusRunning {
		up, err := p.connect(ctx, info)
		if err == nil {
			if err = up.healthy(ctx); err == nil {
				p.log.Info("opencode proxy: re-adopted its running sandbox", "sandbox", SandboxName, "uuid", info.UUID)
				return up, nil
			}
			up.close()
		}
		p.log.Info("opencode proxy: its sandbox runs but its server does not answer; replacing it", "sandbox", SandboxName, "err", err)
	} else {
		p.log.Info("opencode proxy: replacing its sandbox", "sandbox", SandboxName, "status", info.Status)
	}
	if err := p.sb.RemoveSandbox(ctx, SandboxName); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("removing the old sandbox %s: %w", SandboxName, err)
	}
	return nil, nil
}

// startServer starts `opencode serve` in info's sandbox and waits until
// it answers through the published port.
func (p *Proxy) startServer(ctx context.Context, info api.SandboxInfo) (*upstream, error) {
	up, err := p.connect(ctx, info)
	if err != nil {
		return nil, err
	}
	p.log.Info("opencode proxy: starting opencode serve", "sandbox", SandboxName, "address", up.addr)
	cmd, err := p.sb.StartDetached(ctx, SandboxName, sandbox.ExecOptions{
		Argv: []string{agent.Binary, "serve", "--port", strconv.Itoa(serverPort), "--hostname", "0.0.0.0"},
		// The server's own password: its port on the host's loopback is
		// open to every local user. Only this sandbox and the daemon
		// know it.
		Env: []string{"OPENCODE_SERVER_USERNAME=" + serverUser, "OPENCODE_SERVER_PASSWORD=" + up.password},
	})
	if err != nil {
		up.close()
		return nil, fmt.Errorf("starting opencode serve in sandbox %s: %w", SandboxName, err)
	}
	if err := p.waitReady(ctx, up, cmd.ID); err != nil {
		up.close()
		return nil, err
	}
	return up, nil
}

// waitReady polls up's health check until it answers 200, the server
// exits (its output tells why) or ReadyTimeout passes.
func (p *Proxy) waitReady(ctx context.Context, up *upstream, id string) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, p.opts.ReadyTimeout)
	defer cancel()
	lastLog := start
	for {
		err := up.healthy(ctx)
		if err == nil {
			return nil
		}
		if d, derr := p.sb.GetDetached(ctx, SandboxName, id); derr == nil && d.Status != api.DetachedRunning {
			return p.serverExited(ctx, d)
		}
		if time.Since(lastLog) >= 10*time.Second {
			p.log.Info("opencode proxy: waiting for opencode serve to answer", "sandbox", SandboxName,
				"elapsed", time.Since(start).Round(time.Second), "last", err)
			lastLog = time.Now()
		}
		t := time.NewTimer(probeEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			if p.ctx.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: opencode serve in sandbox %s did not answer %s within %v (last: %v)",
					errdefs.ErrUnavailable, SandboxName, healthPath, p.opts.ReadyTimeout, err)
			}
			return fmt.Errorf("starting the OpenCode sandbox: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// serverExited explains a server that ended before it answered, with the
// end of its error output.
func (p *Proxy) serverExited(ctx context.Context, d api.DetachedCommand) error {
	code := "?"
	if d.ExitCode != nil {
		code = strconv.Itoa(*d.ExitCode)
	}
	out := ""
	if logs, err := p.sb.DetachedLogs(ctx, SandboxName, d.ID); err == nil {
		out = logs.Stderr
		if strings.TrimSpace(out) == "" {
			out = logs.Stdout
		}
	}
	out = strings.TrimSpace(out)
	if len(out) > 1024 {
		out = "…" + strings.ToValidUTF8(out[len(out)-1024:], "")
	}
	return fmt.Errorf("%w: opencode serve in sandbox %s exited (status %s) before it answered: %s",
		errdefs.ErrUnavailable, SandboxName, code, out)
}

// connect finds where the sandbox's port is published on the host.
func (p *Proxy) connect(ctx context.Context, info api.SandboxInfo) (*upstream, error) {
	n, err := p.sb.SandboxNetwork(ctx, SandboxName)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: its network: %w", SandboxName, err)
	}
	for _, pp := range n.Published {
		if pp.SandboxPort == serverPort && pp.Address != "" {
			return p.newUpstream(info.UUID, pp.Address), nil
		}
	}
	return nil, fmt.Errorf("%w: sandbox %s has no published port for %d", errdefs.ErrUnavailable, SandboxName, serverPort)
}

// removeOurs removes the sandbox if it is the proxy's (and, with a uuid,
// that one), whatever ctx says: nothing half-made stays behind.
func (p *Proxy) removeOurs(ctx context.Context, uuid string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	info, err := p.sb.GetSandbox(ctx, SandboxName)
	if err != nil || !ours(info) || (uuid != "" && info.UUID != uuid) {
		return
	}
	if err := p.sb.RemoveSandbox(ctx, SandboxName); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		p.log.Warn("opencode proxy: removing the sandbox it could not bring up", "sandbox", SandboxName, "err", err)
	}
}

// ours reports whether the proxy made info's sandbox.
func ours(info api.SandboxInfo) bool { return info.Labels[labelProxy] == labelProxyValue }

// password is the sandbox's server's password: derived from its UUID, so
// a restarted daemon with the same secret knows it.
func (p *Proxy) password(uuid string) string {
	m := hmac.New(sha256.New, p.secret)
	m.Write([]byte("agentkernel opencode-attach server password\x00" + uuid))
	return hex.EncodeToString(m.Sum(nil))
}
