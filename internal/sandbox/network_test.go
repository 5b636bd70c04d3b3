package sandbox

import (
	"context"
	"errors"
	"fmt"
	"github.com/agentkernel/agentkernel/internal/audit"
	"github.com/agentkernel/agentkernel/internal/backend"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/internal/secrets"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// capBackend is a Backend that only reports capabilities.
type capBackend struct {
	backend.Backend
	gateway bool
}

func (b capBackend) Capabilities() backend.Capabilities {
	return backend.Capabilities{NetworkGateway: b.gateway}
}

func netManager(t *testing.T) *Manager {
	v, err := secrets.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return NewManager(Config{Secrets: v, Backends: map[string]backend.Backend{"gw": capBackend{gateway: true}, "nogw": capBackend{}}})
}

func netSpec(t *testing.T, backendName, profile string) *backend.Spec {
	sec, err := ResolveProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	return &backend.Spec{ID: "0b8f2c1e-5d7a-4c8e-9f00-123456789abc", Backend: backendName, Security: sec, Env: []string{"PATH=/bin", "OPENAI_API_KEY=real-from-image"}}
}

func TestResolveNetwork(t *testing.T) {
	m := netManager(t)
	m.cfg.Secrets.Set("OPENAI_API_KEY", "sk-openai")
	spec := netSpec(t, "gw", "moderate")
	_, err := m.resolveNetwork(api.CreateSandboxRequest{
		Network: &api.NetworkPolicy{Allow: []string{"example.com"}, AllowCIDRs: []string{"203.0.113.0/24:443"}, Presets: []string{"claude"}},
		Secrets: []string{"OPENAI_API_KEY:api.openai.com:X-Key"},
		Publish: []string{"8080:80", "0:3000"},
	}, spec)
	if err != nil {
		t.Fatal(err)
	}
	g := spec.Gateway
	if spec.Security.Network != "gateway" || g == nil || g.Policy.Profile != policy.Moderate || len(g.Policy.Rules) != 1 ||
		g.Policy.Rules[0].CIDR != netip.MustParsePrefix("203.0.113.0/24") || !slices.Equal(g.Policy.Rules[0].Ports, []uint16{443}) {
		t.Fatalf("gateway %+v", g)
	}
	if !slices.Equal(g.Policy.Allow, []string{"example.com", "api.openai.com"}) || g.Policy.Presets[0] != "claude" ||
		g.Secrets[0].Header != "X-Key" {
		t.Errorf("allow %v presets %v secrets %+v", g.Policy.Allow, g.Policy.Presets, g.Secrets)
	}
	if len(g.Publish) != 2 || g.Publish[0] != (backend.PortMapping{HostPort: 8080, SandboxPort: 80}) || g.Publish[1] != (backend.PortMapping{HostPort: 0, SandboxPort: 3000}) {
		t.Errorf("publish %+v", g.Publish)
	}
}

func TestResolveNetworkSecrets(t *testing.T) {
	m := netManager(t)
	m.cfg.Secrets.Set("OPENAI_API_KEY", "sk-openai")
	spec := netSpec(t, "gw", "")
	inline, err := m.resolveNetwork(api.CreateSandboxRequest{
		Secrets: []string{"OPENAI_API_KEY:api.openai.com", "GH=ghp_inline:github.com", "ANTHROPIC_API_KEY=sk-ant:api.anthropic.com"},
	}, spec)
	if err != nil {
		t.Fatal(err)
	}
	g := spec.Gateway
	want := []backend.SecretRef{
		{Name: "OPENAI_API_KEY", VaultName: "OPENAI_API_KEY", Host: "api.openai.com", Header: "Authorization"},
		{Name: "GH", VaultName: "sandbox.0b8f2c1e5d7a4c8e9f00123456789abc.GH", Host: "github.com", Header: "Authorization"},
		{Name: "ANTHROPIC_API_KEY", VaultName: "sandbox.0b8f2c1e5d7a4c8e9f00123456789abc.ANTHROPIC_API_KEY", Host: "api.anthropic.com", Header: "x-api-key"},
	}
	if !slices.Equal(g.Secrets, want) {
		t.Fatalf("refs %+v", g.Secrets)
	}
	if len(inline) != 2 || inline[0].Value != "ghp_inline" {
		t.Fatalf("inline %+v", inline)
	}
	// Bound hosts the profile does not allow are added; github.com is in
	// moderate already.
	if !slices.Contains(g.Policy.Allow, "api.openai.com") || !slices.Contains(g.Policy.Allow, "api.anthropic.com") || slices.Contains(g.Policy.Allow, "github.com") {
		t.Errorf("allow %v", g.Policy.Allow)
	}
	env := strings.Join(spec.Env, "\n")
	for _, want := range []string{"OPENAI_API_KEY=agentkernel-placeholder-OPENAI_API_KEY", "GH=agentkernel-placeholder-GH",
		"SSL_CERT_FILE=" + backend.CABundleFile, "REQUESTS_CA_BUNDLE=" + backend.CABundleFile, "NODE_EXTRA_CA_CERTS=" + backend.CACertFile} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(env, "real-from-image") || strings.Contains(env, "ghp_inline") || strings.Count(env, "OPENAI_API_KEY=") != 1 {
		t.Errorf("env:\n%s", env)
	}
	// Stored, the inline values are fetched at start; the scoped entries
	// are hidden from the listing and go with the sandbox.
	if err := m.storeInlineSecrets(spec.ID, inline); err != nil {
		t.Fatal(err)
	}
	vals, err := m.secretValues(spec)
	if err != nil || len(vals) != 3 || vals[1].Value != "ghp_inline" || vals[0].Value != "sk-openai" {
		t.Fatalf("values %+v %v", vals, err)
	}
	if list, _ := m.ListSecrets(context.Background()); len(list) != 1 || list[0].Name != "OPENAI_API_KEY" {
		t.Fatalf("list %+v", list)
	}
	m.deleteSandboxSecrets(spec.ID)
	if all, _ := m.cfg.Secrets.List(); len(all) != 1 {
		t.Fatalf("after delete: %+v", all)
	}
	m.cfg.Secrets.Delete("OPENAI_API_KEY")
	if _, err := m.secretValues(spec); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "secret set OPENAI_API_KEY") {
		t.Fatalf("a deleted secret: %v", err)
	}
}

func TestResolveNetworkRefusals(t *testing.T) {
	m := netManager(t)
	for name, c := range map[string]struct {
		backend, profile string
		req              api.CreateSandboxRequest
		class            error
	}{
		"restrictive allow":  {"gw", "restrictive", api.CreateSandboxRequest{Network: &api.NetworkPolicy{Allow: []string{"a.com"}}}, errdefs.ErrInvalidArgument},
		"restrictive secret": {"gw", "restrictive", api.CreateSandboxRequest{Secrets: []string{"K:a.com"}}, errdefs.ErrInvalidArgument},
		"no gateway publish": {"nogw", "moderate", api.CreateSandboxRequest{Publish: []string{"1:2"}}, errdefs.ErrNotImplemented},
		"missing secret":     {"gw", "moderate", api.CreateSandboxRequest{Secrets: []string{"NOPE:a.com"}}, errdefs.ErrInvalidArgument},
		"two on one host":    {"gw", "moderate", api.CreateSandboxRequest{Secrets: []string{"A=1:a.com", "B=2:a.com"}}, errdefs.ErrInvalidArgument},
		"bad binding":        {"gw", "moderate", api.CreateSandboxRequest{Secrets: []string{"a b:c.com"}}, errdefs.ErrInvalidArgument},
		"bad profile":        {"gw", "moderate", api.CreateSandboxRequest{Network: &api.NetworkPolicy{Profile: "open"}}, errdefs.ErrInvalidArgument},
		"bad name":           {"gw", "moderate", api.CreateSandboxRequest{Network: &api.NetworkPolicy{Allow: []string{"a..b"}}}, errdefs.ErrInvalidArgument},
		"bad preset":         {"gw", "moderate", api.CreateSandboxRequest{Network: &api.NetworkPolicy{Presets: []string{"skynet"}}}, errdefs.ErrInvalidArgument},
		"bad cidr":           {"gw", "moderate", api.CreateSandboxRequest{Network: &api.NetworkPolicy{AllowCIDRs: []string{"::1/128"}}}, errdefs.ErrInvalidArgument},
		"bad publish":        {"gw", "moderate", api.CreateSandboxRequest{Publish: []string{"80"}}, errdefs.ErrInvalidArgument},
		"publish twice":      {"gw", "moderate", api.CreateSandboxRequest{Publish: []string{"80:1", "80:2"}}, errdefs.ErrInvalidArgument},
		"too many secrets":   {"gw", "moderate", api.CreateSandboxRequest{Secrets: make([]string, maxSecrets+1)}, errdefs.ErrInvalidArgument},
	} {
		spec := netSpec(t, c.backend, c.profile)
		if _, err := m.resolveNetwork(c.req, spec); !errors.Is(err, c.class) {
			t.Errorf("%s: %v, want %v", name, err, c.class)
		}
	}
	// Without a gateway-capable backend and without network wishes: lo.
	spec := netSpec(t, "nogw", "moderate")
	if _, err := m.resolveNetwork(api.CreateSandboxRequest{}, spec); err != nil || spec.Security.Network != "loopback" || spec.Gateway != nil {
		t.Fatalf("no gateway backend: %v %+v", err, spec.Security)
	}
}

func TestParseCIDRRuleAndPublish(t *testing.T) {
	for in, want := range map[string]string{"203.0.113.0/24:443": "203.0.113.0/24 [443]", "198.51.100.7": "198.51.100.7/32 []", "10.1.2.3/8": "10.0.0.0/8 []"} {
		r, err := ParseCIDRRule(in)
		if got := fmt.Sprintf("%s %v", r.CIDR, r.Ports); err != nil || got != want {
			t.Errorf("%s: %s %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "1.2.3.4:0", "1.2.3.4:70000", "2001:db8::/32", "1.2.3.4/33", "1.2.3.4:80:90"} {
		if _, err := ParseCIDRRule(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for _, bad := range []string{"", "80", "a:b", "80:0", "70000:80", "-1:80"} {
		if _, err := ParsePublish(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("publish %q: %v", bad, err)
		}
	}
	// The wire form survives a round trip.
	p := api.NetworkPolicy{Profile: "permissive", Allow: []string{"a.com"}, Block: []string{"b.com"}, Presets: []string{"codex"},
		AllowCIDRs: []string{"203.0.113.0/24:443", "198.51.100.7/32"}}
	pol, err := policyFromAPI(p, policy.Moderate)
	if err != nil {
		t.Fatal(err)
	}
	back := policyToAPI(pol)
	if back.Profile != "permissive" || !slices.Equal(back.AllowCIDRs, p.AllowCIDRs) || !slices.Equal(back.Presets, p.Presets) {
		t.Fatalf("round trip %+v", back)
	}
	if pol, _ := policyFromAPI(api.NetworkPolicy{}, policy.Permissive); pol.Profile != policy.Permissive {
		t.Fatalf("empty profile takes the base: %+v", pol)
	}
}

func TestTailAudit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	isNet := func(r audit.Record) bool { return r.Type == "network" }
	if l, err := tailAudit(audit.Files(p), 5, isNet); err != nil || len(l) != 0 {
		t.Fatalf("missing file: %v %v", l, err)
	}
	w, err := audit.Open(p, audit.Options{MaxSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range 1000 {
		typ := "network"
		if i%2 == 1 {
			typ = "command_finished"
		}
		w.Append(audit.Entry{Type: typ, Fields: map[string]int{"n": i}})
	}
	l, err := tailAudit(audit.Files(p), 3, isNet)
	if err != nil || len(l) != 3 || !strings.Contains(string(l[0].Line), `"n":994`) || !strings.Contains(string(l[2].Line), `"n":998`) {
		t.Fatalf("tail: %d %v", len(l), err)
	}
	// Once rotated, the two files hold fewer than 1000 records.
	all, _ := tailAudit(audit.Files(p), 10000, func(audit.Record) bool { return true })
	if len(all) == 0 || len(all) > 1000 || fmt.Sprint(len(audit.Files(p))) != "2" {
		t.Fatalf("%d records in %v", len(all), audit.Files(p))
	}
}

func TestEnvNames(t *testing.T) {
	got := envNames([]string{"A=1", "KEY=agentkernel-placeholder-KEY", "B"})
	if !slices.Equal(got, []string{"A", "KEY", "B"}) {
		t.Fatal(got)
	}
}

func FuzzParseNetworkFlags(f *testing.F) {
	for _, s := range []string{"203.0.113.0/24:443", "1.2.3.4", "8080:80", "0:1", "::1", "1.2.3.4/0:65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := ParseCIDRRule(s); err == nil {
			if !r.CIDR.IsValid() || !r.CIDR.Addr().Is4() || r.CIDR != r.CIDR.Masked() || (len(r.Ports) > 0 && r.Ports[0] == 0) {
				t.Fatalf("accepted %q as %+v", s, r)
			}
			if _, err := policy.Compile(policy.Policy{Rules: []policy.Rule{r}}); err != nil {
				t.Fatalf("%q parsed but does not compile: %v", s, err)
			}
		}
		if p, err := ParsePublish(s); err == nil && p.SandboxPort == 0 {
			t.Fatalf("accepted %q as %+v", s, p)
		}
	})
}

// TestNetworkNone: network profile "none" (agentkernel.toml's [security]
// network = false) leaves the sandbox loopback only, with no gateway, and
// refuses anything that would need a network.
func TestNetworkNone(t *testing.T) {
	m := netManager(t)
	spec := netSpec(t, "gw", "moderate")
	if _, err := m.resolveNetwork(api.CreateSandboxRequest{Network: &api.NetworkPolicy{Profile: "none"}}, spec); err != nil {
		t.Fatal(err)
	}
	if spec.Security.Network != "loopback" || spec.Gateway != nil {
		t.Fatalf("network none: %+v, gateway %+v", spec.Security, spec.Gateway)
	}
	for _, req := range []api.CreateSandboxRequest{
		{Network: &api.NetworkPolicy{Profile: "none", Allow: []string{"example.com"}}},
		{Network: &api.NetworkPolicy{Profile: "none", Presets: []string{"claude"}}},
		{Network: &api.NetworkPolicy{Profile: "none"}, Publish: []string{"0:80"}},
		{Network: &api.NetworkPolicy{Profile: "none"}, Secrets: []string{"K:example.com"}},
	} {
		if _, err := m.resolveNetwork(req, netSpec(t, "gw", "moderate")); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: %v", req, err)
		}
	}
}

// TestLegacyNetworkLog: a log an older supervisor wrote still reads.
func TestLegacyNetworkLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), legacyNetworkLogFile)
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "{\"kind\":\"connect\",\"port\":%d}\n", i+1)
	}
	if err := os.WriteFile(p, []byte(b.String()+"torn"), 0o600); err != nil {
		t.Fatal(err)
	}
	evs, err := legacyNetworkLog(p, 3)
	if err != nil || len(evs) != 3 || evs[0].Port != 48 || evs[2].Port != 50 {
		t.Fatalf("%+v %v", evs, err)
	}
}
