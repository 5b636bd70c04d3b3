package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func mustCompile(t *testing.T, p Policy) *Compiled {
	t.Helper()
	c, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile(%+v): %v", p, err)
	}
	return c
}

func TestZeroPolicyAllowsNothing(t *testing.T) {
	c := mustCompile(t, Policy{})
	if d := c.AllowName("github.com"); d.Allowed {
		t.Fatalf("zero policy allowed github.com: %+v", d)
	}
	if d := c.AllowAddr(netip.MustParseAddr("1.1.1.1"), 443, TCP); d.Allowed {
		t.Fatalf("zero policy allowed 1.1.1.1: %+v", d)
	}
}

func TestNameMatching(t *testing.T) {
	c := mustCompile(t, Policy{
		Allow: []string{"Example.COM.", "*.corp.example"},
		Block: []string{"bad.corp.example"},
	})
	for _, tc := range []struct {
		name string
		want bool
		rule string
	}{
		{"example.com", true, "allow:Example.COM."},
		{"EXAMPLE.com.", true, "allow:Example.COM."},
		{"www.example.com", false, "default-deny"},
		{"notexample.com", false, "default-deny"},
		{"corp.example", false, "default-deny"},
		{"a.corp.example", true, "allow:*.corp.example"},
		{"a.b.corp.example", true, "allow:*.corp.example"},
		{"xcorp.example", false, "default-deny"},
		{"bad.corp.example", false, "block:bad.corp.example"},
		{"bad..corp.example", false, "invalid-name"},
		{"", false, "invalid-name"},
		{"a b.example.com", false, "invalid-name"},
	} {
		d := c.AllowName(tc.name)
		if d.Allowed != tc.want || d.Rule != tc.rule {
			t.Errorf("AllowName(%q) = %+v, want allowed=%v rule=%q", tc.name, d, tc.want, tc.rule)
		}
	}
}

func TestProfilesAndPresets(t *testing.T) {
	mod := mustCompile(t, Policy{Profile: Moderate})
	if d := mod.AllowName("registry.npmjs.org"); !d.Allowed || d.Rule != "profile:moderate:registry.npmjs.org" {
		t.Fatalf("moderate npm: %+v", d)
	}
	if d := mod.AllowName("api.anthropic.com"); d.Allowed {
		t.Fatalf("moderate allowed an agent API without a preset: %+v", d)
	}
	if d := mod.AllowAddr(netip.MustParseAddr("8.8.8.8"), 443, TCP); d.Allowed {
		t.Fatalf("moderate allowed a bare address: %+v", d)
	}
	cl := mustCompile(t, Policy{Presets: []string{"claude"}})
	if d := cl.AllowName("api.anthropic.com"); !d.Allowed || d.Rule != "preset:claude:api.anthropic.com" {
		t.Fatalf("claude preset: %+v", d)
	}
	if d := cl.AllowName("pypi.org"); !d.Allowed {
		t.Fatalf("claude preset lacks registries: %+v", d)
	}
	perm := mustCompile(t, Policy{Profile: Permissive, Block: []string{"*.evil.example"}})
	if d := perm.AllowName("anything.example"); !d.Allowed || d.Rule != "profile:permissive" {
		t.Fatalf("permissive name: %+v", d)
	}
	if d := perm.AllowName("x.evil.example"); d.Allowed {
		t.Fatalf("permissive ignored block: %+v", d)
	}
	if d := perm.AllowAddr(netip.MustParseAddr("8.8.8.8"), 5000, UDP); !d.Allowed {
		t.Fatalf("permissive address: %+v", d)
	}
	restr := mustCompile(t, Policy{Profile: Restrictive})
	if d := restr.AllowName("github.com"); d.Allowed {
		t.Fatalf("restrictive allowed github.com: %+v", d)
	}
	for _, n := range PresetNames() {
		if _, err := Compile(Policy{Presets: []string{n}}); err != nil {
			t.Fatalf("preset %s does not compile: %v", n, err)
		}
	}
}

func TestRules(t *testing.T) {
	c := mustCompile(t, Policy{Rules: []Rule{
		{CIDR: netip.MustParsePrefix("203.0.113.7/24"), Ports: []uint16{5432}, Proto: TCP},
		{CIDR: netip.MustParsePrefix("198.51.100.0/24"), Proto: UDP},
	}})
	ip := netip.MustParseAddr("203.0.113.9")
	if d := c.AllowAddr(ip, 5432, TCP); !d.Allowed || d.Rule != "cidr:203.0.113.0/24" {
		t.Fatalf("rule tcp: %+v", d)
	}
	if d := c.AllowAddr(ip, 5433, TCP); d.Allowed {
		t.Fatalf("rule wrong port allowed: %+v", d)
	}
	if d := c.AllowAddr(ip, 5432, UDP); d.Allowed {
		t.Fatalf("rule wrong proto allowed: %+v", d)
	}
	if d := c.AllowAddr(netip.MustParseAddr("198.51.100.1"), 9, UDP); !d.Allowed {
		t.Fatalf("udp rule: %+v", d)
	}
}

func TestDomainPorts(t *testing.T) {
	c := mustCompile(t, Policy{})
	if !c.DomainPort(443) || !c.DomainPort(80) || c.DomainPort(22) {
		t.Fatal("default domain ports wrong")
	}
	c = mustCompile(t, Policy{DomainPorts: []uint16{22}})
	if c.DomainPort(443) || !c.DomainPort(22) {
		t.Fatal("explicit domain ports wrong")
	}
}

func TestCompileRejects(t *testing.T) {
	for name, p := range map[string]Policy{
		"profile":    {Profile: "open"},
		"preset":     {Presets: []string{"nope"}},
		"pattern":    {Allow: []string{"*"}},
		"tld":        {Allow: []string{"*.com"}},
		"mid-wild":   {Allow: []string{"a.*.com"}},
		"block":      {Block: []string{"bad name"}},
		"cidr":       {Rules: []Rule{{}}},
		"ipv6":       {Rules: []Rule{{CIDR: netip.MustParsePrefix("::/0")}}},
		"proto":      {Rules: []Rule{{CIDR: netip.MustParsePrefix("1.2.3.0/24"), Proto: "sctp"}}},
		"port0":      {Rules: []Rule{{CIDR: netip.MustParsePrefix("1.2.3.0/24"), Ports: []uint16{0}}}},
		"domainport": {DomainPorts: []uint16{0}},
		"toomany":    {Allow: manyNames(MaxPatterns + 1)},
	} {
		if _, err := Compile(p); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: Compile err = %v, want invalid argument", name, err)
		}
	}
}

func TestPolicyCopied(t *testing.T) {
	p := Policy{Allow: []string{"a.example"}}
	c := mustCompile(t, p)
	p.Allow[0] = "b.example"
	if got := c.Policy().Allow[0]; got != "a.example" {
		t.Fatalf("compiled policy aliases caller's slice: %q", got)
	}
}

func manyNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("h%d.example", i)
	}
	return names
}
