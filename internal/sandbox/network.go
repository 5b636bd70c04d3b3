package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/agentkernel/agentkernel/internal/backend"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/agentkernel/agentkernel/internal/audit"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/internal/secrets"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Limits on a sandbox's network settings in a request.
const (
	maxPublish = 64
	maxSecrets = 64
	// DefaultNetworkLog and MaxNetworkLog bound the events one
	// GET /sandboxes/{name}/network/log returns.
	DefaultNetworkLog = 200
	MaxNetworkLog     = 10000
)

// resolveNetwork fills in spec's network from req: the gateway (policy,
// secret bindings, published ports) and the environment variables the
// secrets add. It returns the inline secret values ("KEY=value:host") the
// caller must put in the vault once the sandbox is recorded. spec.Security
// is already resolved; a backend that cannot attach a gateway gets
// "loopback", and a request that needs a network is then refused.
func (m *Manager) resolveNetwork(req api.CreateSandboxRequest, spec *backend.Spec) ([]secrets.Binding, error) {
	if req.Network != nil && req.Network.Profile == "none" {
		n := req.Network
		if len(n.Allow)+len(n.Block)+len(n.Presets)+len(n.AllowCIDRs)+len(req.Publish)+len(req.Secrets) > 0 {
			return nil, fmt.Errorf("%w: network profile none means no network: it takes no allow, block, presets, CIDRs, published ports or secrets", errdefs.ErrInvalidArgument)
		}
		if spec.Security.Network == "gateway" {
			spec.Security.Network = "loopback"
		}
		return nil, nil
	}
	wants := req.Network != nil || len(req.Publish) > 0 || len(req.Secrets) > 0
	if spec.Security.Network != "gateway" {
		if wants {
			return nil, fmt.Errorf("%w: profile %s has no network; network policy, --publish and --secret need profile moderate or permissive",
				errdefs.ErrInvalidArgument, spec.Security.Profile)
		}
		return nil, nil
	}
	if b, ok := m.cfg.Backends[spec.Backend]; !ok || !b.Capabilities().NetworkGateway {
		if wants {
			return nil, fmt.Errorf("%w: the %s backend cannot attach a network gateway yet, so network policy, --publish and --secret are not available on it",
				errdefs.ErrNotImplemented, spec.Backend)
		}
		spec.Security.Network = "loopback"
		return nil, nil
	}
	base := policy.Moderate
	if spec.Security.Profile == "permissive" {
		base = policy.Permissive
	}
	var want api.NetworkPolicy
	if req.Network != nil {
		want = *req.Network
	}
	pol, err := policyFromAPI(want, base)
	if err != nil {
		return nil, err
	}
	g := &backend.GatewaySpec{}
	if len(req.Publish) > maxPublish {
		return nil, fmt.Errorf("%w: %d published ports (at most %d)", errdefs.ErrInvalidArgument, len(req.Publish), maxPublish)
	}
	for _, p := range req.Publish {
		pm, err := ParsePublish(p)
		if err != nil {
			return nil, err
		}
		for _, q := range g.Publish {
			if pm.HostPort != 0 && q.HostPort == pm.HostPort {
				return nil, fmt.Errorf("%w: host port %d published twice", errdefs.ErrInvalidArgument, pm.HostPort)
			}
		}
		g.Publish = append(g.Publish, pm)
	}
	inline, err := m.resolveSecrets(req.Secrets, spec, g)
	if err != nil {
		return nil, err
	}
	if g.Policy, err = withSecretHosts(pol, g.Secrets); err != nil {
		return nil, err
	}
	if len(g.Secrets) > 0 || m.cfg.SandboxCAs {
		// The sandbox trusts its interception CA and daemon.toml's
		// sandbox_ca_files through these (see backend.CABundleFile).
		spec.Env = setEnv(spec.Env,
			"SSL_CERT_FILE="+backend.CABundleFile, "REQUESTS_CA_BUNDLE="+backend.CABundleFile, "NODE_EXTRA_CA_CERTS="+backend.CACertFile)
	}
	spec.Gateway = g
	return inline, nil
}

// withSecretHosts adds to p's Allow each secret's host it does not allow
// yet (a secret bound to a host is a wish to reach it), and compiles the
// result to check it.
func withSecretHosts(p policy.Policy, refs []backend.SecretRef) (policy.Policy, error) {
	c, err := policy.Compile(p)
	if err != nil {
		return p, err
	}
	for _, r := range refs {
		if !c.AllowName(r.Host).Allowed && !slices.Contains(p.Allow, r.Host) {
			p.Allow = append(p.Allow, r.Host)
		}
	}
	_, err = policy.Compile(p)
	return p, err
}

// policyFromAPI turns a wire policy into the gateway's; an empty profile
// means base.
func policyFromAPI(p api.NetworkPolicy, base policy.Profile) (policy.Policy, error) {
	out := policy.Policy{
		Profile: policy.Profile(p.Profile), Allow: slices.Clone(p.Allow), Block: slices.Clone(p.Block),
		Presets: slices.Clone(p.Presets),
	}
	if out.Profile == "" {
		out.Profile = base
	}
	if len(p.AllowCIDRs) > policy.MaxRules {
		return out, fmt.Errorf("%w: %d CIDR rules (at most %d)", errdefs.ErrInvalidArgument, len(p.AllowCIDRs), policy.MaxRules)
	}
	for _, s := range p.AllowCIDRs {
		r, err := ParseCIDRRule(s)
		if err != nil {
			return out, err
		}
		out.Rules = append(out.Rules, r)
	}
	if _, err := policy.Compile(out); err != nil {
		return out, err
	}
	return out, nil
}

// policyToAPI is the wire form of p.
func policyToAPI(p policy.Policy) *api.NetworkPolicy {
	out := &api.NetworkPolicy{Profile: string(p.Profile), Allow: p.Allow, Block: p.Block, Presets: p.Presets}
	for _, r := range p.Rules {
		if len(r.Ports) == 0 {
			out.AllowCIDRs = append(out.AllowCIDRs, r.CIDR.String())
		}
		for _, port := range r.Ports {
			out.AllowCIDRs = append(out.AllowCIDRs, r.CIDR.String()+":"+strconv.Itoa(int(port)))
		}
	}
	return out
}

// ParseCIDRRule parses an --allow-cidr value, "CIDR[:PORT]" or
// "IP[:PORT]" (IPv4), into a rule for TCP and UDP.
func ParseCIDRRule(s string) (policy.Rule, error) {
	bad := fmt.Errorf("%w: --allow-cidr %q: want an IPv4 CIDR or address, optionally :PORT (203.0.113.0/24:443)", errdefs.ErrInvalidArgument, s)
	addr, port, hasPort := strings.Cut(s, ":")
	var r policy.Rule
	if strings.Contains(addr, "/") {
		p, err := netip.ParsePrefix(addr)
		if err != nil || !p.Addr().Is4() {
			return r, bad
		}
		r.CIDR = p.Masked()
	} else {
		ip, err := netip.ParseAddr(addr)
		if err != nil || !ip.Is4() {
			return r, bad
		}
		r.CIDR = netip.PrefixFrom(ip, 32)
	}
	if hasPort {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return r, bad
		}
		r.Ports = []uint16{uint16(n)}
	}
	return r, nil
}

// ParsePublish parses a --publish value, "HOSTPORT:SANDBOXPORT".
func ParsePublish(s string) (backend.PortMapping, error) {
	bad := fmt.Errorf("%w: --publish %q: want HOSTPORT:SANDBOXPORT (HOSTPORT 0 picks a free port)", errdefs.ErrInvalidArgument, s)
	h, sb, ok := strings.Cut(s, ":")
	if !ok {
		return backend.PortMapping{}, bad
	}
	hp, err1 := strconv.ParseUint(h, 10, 16)
	sp, err2 := strconv.ParseUint(sb, 10, 16)
	if err1 != nil || err2 != nil || sp == 0 {
		return backend.PortMapping{}, bad
	}
	return backend.PortMapping{HostPort: uint16(hp), SandboxPort: uint16(sp)}, nil
}

// SandboxNetwork describes a sandbox's network: the policy in force (the
// live gateway's while it runs), published ports, secret bindings.
func (m *Manager) SandboxNetwork(ctx context.Context, name string) (api.NetworkInfo, error) {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return api.NetworkInfo{}, err
	}
	spec, err := specOf(rec.Spec)
	if err != nil {
		return api.NetworkInfo{}, err
	}
	return m.networkInfo(ctx, rec.UUID, rec.Name, spec)
}

func (m *Manager) networkInfo(ctx context.Context, uuid, name string, spec *backend.Spec) (api.NetworkInfo, error) {
	info := api.NetworkInfo{Sandbox: name, Mode: spec.Security.Network}
	g := spec.Gateway
	if g == nil {
		return info, nil
	}
	for _, r := range g.Secrets {
		info.Secrets = append(info.Secrets, api.SecretBinding{Name: r.Name, Host: r.Host, Header: r.Header})
	}
	for _, p := range g.Publish {
		info.Published = append(info.Published, api.PublishedPort{HostPort: p.HostPort, SandboxPort: p.SandboxPort})
	}
	if l := m.getLive(uuid); l != nil {
		st, err := l.sup.Network(ctx)
		if err != nil {
			return info, fmt.Errorf("sandbox %s: its gateway: %w", name, err)
		}
		info.Running = true
		info.Policy = policyToAPI(st.Policy)
		info.Published = info.Published[:0]
		for _, p := range st.Published {
			info.Published = append(info.Published, api.PublishedPort{HostPort: p.Host, SandboxPort: p.Sandbox, Address: p.Addr})
		}
		info.Stats = &api.NetworkStats{
			TCPAllowed: st.Stats.TCPAllowed, TCPDenied: st.Stats.TCPDenied, UDPAllowed: st.Stats.UDPAllowed,
			UDPDenied: st.Stats.UDPDenied, DNSDropped: st.Stats.DNSDropped, AuditDropped: st.AuditDropped,
		}
		return info, nil
	}
	pol, err := m.savedPolicy(uuid, g.Policy)
	if err != nil {
		return info, err
	}
	info.Policy = policyToAPI(pol)
	return info, nil
}

// savedPolicy is the policy a sandbox starts with: the daemon's
// supervisor.PolicyFile if a change was saved, else the spec's.
func (m *Manager) savedPolicy(uuid string, spec policy.Policy) (policy.Policy, error) {
	b, err := os.ReadFile(filepath.Join(m.stateDir(uuid), supervisor.PolicyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return spec, nil
	}
	if err != nil {
		return spec, err
	}
	var p policy.Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return spec, fmt.Errorf("%w: %s: %v", errdefs.ErrFailedPrecondition, supervisor.PolicyFile, err)
	}
	return p, nil
}

// SetSandboxNetwork replaces a sandbox's egress policy: at once in its
// running gateway, and for its later starts. An empty profile keeps the
// current one. Hosts of its secret bindings stay allowed.
func (m *Manager) SetSandboxNetwork(ctx context.Context, name string, p api.NetworkPolicy) (api.NetworkInfo, error) {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return api.NetworkInfo{}, err
	}
	unlock := m.locks.Lock(rec.UUID)
	defer unlock()
	spec, err := specOf(rec.Spec)
	if err != nil {
		return api.NetworkInfo{}, err
	}
	if spec.Gateway == nil {
		return api.NetworkInfo{}, fmt.Errorf("%w: sandbox %s has no network gateway (network %q); create it with profile moderate or permissive",
			errdefs.ErrFailedPrecondition, name, spec.Security.Network)
	}
	cur, err := m.savedPolicy(rec.UUID, spec.Gateway.Policy)
	if err != nil {
		return api.NetworkInfo{}, err
	}
	pol, err := policyFromAPI(p, cur.Profile)
	if err != nil {
		return api.NetworkInfo{}, err
	}
	if pol, err = withSecretHosts(pol, spec.Gateway.Secrets); err != nil {
		return api.NetworkInfo{}, err
	}
	if l := m.getLive(rec.UUID); l != nil {
		if _, err := l.sup.SetNetworkPolicy(ctx, pol); err != nil {
			return api.NetworkInfo{}, fmt.Errorf("sandbox %s: %w", name, err)
		}
	}
	b, err := json.Marshal(pol)
	if err != nil {
		return api.NetworkInfo{}, err
	}
	if err := writeFileAtomic(filepath.Join(m.stateDir(rec.UUID), supervisor.PolicyFile), b); err != nil {
		return api.NetworkInfo{}, fmt.Errorf("sandbox %s: saving its policy: %w", name, err)
	}
	m.event(rec.UUID, rec.Name, "network_policy_changed", map[string]any{"policy": policyToAPI(pol)})
	return m.networkInfo(ctx, rec.UUID, rec.Name, spec)
}

// NetworkLog returns the last limit events (DefaultNetworkLog if 0, at most
// MaxNetworkLog) of a sandbox's network audit log, oldest first.
func (m *Manager) NetworkLog(ctx context.Context, name string, limit int) ([]api.NetworkEvent, error) {
	if limit < 0 || limit > MaxNetworkLog {
		return nil, fmt.Errorf("%w: limit %d: must be 0 to %d", errdefs.ErrInvalidArgument, limit, MaxNetworkLog)
	}
	if limit == 0 {
		limit = DefaultNetworkLog
	}
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(m.stateDir(rec.UUID), supervisor.AuditLogFile)
	if len(audit.Files(p)) == 0 {
		return legacyNetworkLog(filepath.Join(m.stateDir(rec.UUID), legacyNetworkLogFile), limit)
	}
	recs, err := tailAudit(audit.Files(p), limit, func(r audit.Record) bool { return r.Type == supervisor.TypeNetwork })
	if err != nil {
		return nil, err
	}
	out := make([]api.NetworkEvent, 0, len(recs))
	for _, r := range recs {
		var e api.NetworkEvent
		if json.Unmarshal(r.Line, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// legacyNetworkLogFile is where supervisors before the chained audit log
// wrote the gateway's events, one netgw.Event per line (rotated to .1).
// A sandbox whose supervisor is that old still serves its log from it.
const legacyNetworkLogFile = "network.log"

// legacyNetworkLog returns the last limit events of a legacy network log.
func legacyNetworkLog(p string, limit int) ([]api.NetworkEvent, error) {
	var out []api.NetworkEvent
	for _, f := range []string{p + ".1", p} {
		fh, err := os.Open(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 0, 4096), audit.MaxLine)
		for sc.Scan() {
			var e api.NetworkEvent
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				out = append(out, e)
				if len(out) > 2*limit {
					out = append(out[:0], out[len(out)-limit:]...)
				}
			}
		}
		fh.Close()
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// specOf decodes a sandbox's stored spec.
func specOf(raw []byte) (*backend.Spec, error) {
	var s backend.Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("decoding the sandbox's spec: %w", err)
	}
	return &s, nil
}

// writeFileAtomic writes a 0600 file through a temporary one.
func writeFileAtomic(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
