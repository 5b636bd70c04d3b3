// Package policy holds a sandbox's network policy: which names it may
// resolve, which addresses and ports it may reach, the three profiles of
// agentkernel (restrictive, moderate, permissive) and the agent presets.
//
// A Policy is plain data (it comes from agentkernel.toml, the CLI and the
// HTTP API). Compile validates it once and returns a *Compiled, an immutable
// matcher that the gateway swaps atomically when the policy changes on a
// running sandbox. Nothing here knows about forbidden ranges (loopback, LAN,
// metadata, the host): the gateway checks those first and they always win.
package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Profile is a named base policy.
type Profile string

// The profiles. The zero Profile ("") is the same as Restrictive: a policy
// that names nothing allows nothing.
const (
	// Restrictive allows nothing beyond the policy's own Allow, Presets and
	// Rules (with none of those: no network at all).
	Restrictive Profile = "restrictive"
	// Moderate allows the names in ModerateAllow (package registries and
	// git hosts); this is agentkernel's default.
	Moderate Profile = "moderate"
	// Permissive allows any name that is not blocked and any public
	// address on any port (so Block only stops the gateway's DNS from
	// resolving a name; its addresses stay reachable). Forbidden ranges
	// (host, LAN, metadata) are still refused by the gateway.
	Permissive Profile = "permissive"
)

// Proto is a transport protocol named in a Rule.
type Proto string

// The protocols. The zero Proto ("") in a Rule means both.
const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Rule allows flows to an address range, optionally only some ports and one
// protocol. Rules are the only way to allow UDP beyond the gateway's DNS,
// and the only way to allow an address that was not resolved from a name.
type Rule struct {
	// CIDR is the destination range (IPv4). Required.
	CIDR netip.Prefix `json:"cidr"`
	// Ports lists destination ports; empty means every port.
	Ports []uint16 `json:"ports,omitempty"`
	// Proto is TCP, UDP, or "" for both.
	Proto Proto `json:"proto,omitempty"`
}

// Policy is a sandbox's network policy as configured. The zero Policy
// allows nothing.
type Policy struct {
	// Profile is the base allow-list; see the constants.
	Profile Profile `json:"profile,omitempty"`
	// Allow lists extra names: "example.com" matches that name exactly,
	// "*.example.com" matches every name under it (not example.com
	// itself).
	Allow []string `json:"allow,omitempty"`
	// Block lists names refused even if Allow, a preset or the profile
	// allows them; same pattern syntax as Allow.
	Block []string `json:"block,omitempty"`
	// Presets names agent presets (see Presets) whose names are allowed.
	Presets []string `json:"presets,omitempty"`
	// Rules allow address ranges (see Rule).
	Rules []Rule `json:"rules,omitempty"`
	// DomainPorts lists the TCP ports an allowed name may be reached on.
	// Nil means DefaultDomainPorts (80 and 443). Port 443 requires a TLS
	// ClientHello whose SNI is the name and port 80 an HTTP request whose
	// Host is the name; any other port listed here is opaque: the
	// gateway checks only that the address was resolved for an allowed
	// name (for example 22, for git over SSH).
	DomainPorts []uint16 `json:"domain_ports,omitempty"`
}

// DefaultDomainPorts is used when Policy.DomainPorts is nil.
var DefaultDomainPorts = []uint16{80, 443}

// Limits on a policy's size, so that a hostile API caller cannot make the
// gateway's matcher arbitrarily large.
const (
	MaxPatterns = 4096
	MaxRules    = 1024
)

// Decision is the answer to one question put to a Compiled policy. Rule names
// what decided, for the audit log: "allow:NAME", "block:NAME",
// "profile:moderate:NAME", "preset:claude:NAME", "cidr:PREFIX",
// "profile:permissive" or "default-deny".
type Decision struct {
	Allowed bool
	Rule    string
}

// pattern is one compiled name pattern.
type pattern struct {
	name     string // lowercase, no trailing dot; for a wildcard, the suffix without "*."
	wildcard bool
	rule     string
}

func (p pattern) match(name string) bool {
	if p.wildcard {
		return len(name) > len(p.name)+1 && strings.HasSuffix(name, p.name) && name[len(name)-len(p.name)-1] == '.'
	}
	return name == p.name
}

// Compiled is a validated, immutable policy. It is safe for concurrent use.
type Compiled struct {
	src         Policy
	permissive  bool
	allow       []pattern
	block       []pattern
	rules       []Rule
	domainPorts []uint16
}

// Compile validates p and returns its matcher. Errors wrap
// errdefs.ErrInvalidArgument and name the offending entry.
func Compile(p Policy) (*Compiled, error) {
	c := &Compiled{src: clonePolicy(p)}
	switch p.Profile {
	case "", Restrictive:
	case Moderate:
		for _, n := range ModerateAllow {
			if err := c.addAllow(n, "profile:moderate:"+n); err != nil {
				return nil, err
			}
		}
	case Permissive:
		c.permissive = true
	default:
		return nil, fmt.Errorf("policy: unknown profile %q (want restrictive, moderate or permissive): %w", p.Profile, errdefs.ErrInvalidArgument)
	}
	for _, name := range p.Presets {
		names, err := Preset(name)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if err := c.addAllow(n, "preset:"+name+":"+n); err != nil {
				return nil, err
			}
		}
	}
	for _, n := range p.Allow {
		if err := c.addAllow(n, "allow:"+n); err != nil {
			return nil, err
		}
	}
	for _, n := range p.Block {
		pt, err := compilePattern(n)
		if err != nil {
			return nil, err
		}
		pt.rule = "block:" + n
		c.block = append(c.block, pt)
	}
	if len(c.allow)+len(c.block) > MaxPatterns {
		return nil, fmt.Errorf("policy: %d name patterns, at most %d: %w", len(c.allow)+len(c.block), MaxPatterns, errdefs.ErrInvalidArgument)
	}
	if len(p.Rules) > MaxRules {
		return nil, fmt.Errorf("policy: %d rules, at most %d: %w", len(p.Rules), MaxRules, errdefs.ErrInvalidArgument)
	}
	for i, r := range p.Rules {
		if !r.CIDR.IsValid() || !r.CIDR.Addr().Is4() {
			return nil, fmt.Errorf("policy: rule %d: CIDR %q is not an IPv4 prefix: %w", i, r.CIDR, errdefs.ErrInvalidArgument)
		}
		switch r.Proto {
		case "", TCP, UDP:
		default:
			return nil, fmt.Errorf("policy: rule %d: unknown proto %q: %w", i, r.Proto, errdefs.ErrInvalidArgument)
		}
		if slices.Contains(r.Ports, 0) {
			return nil, fmt.Errorf("policy: rule %d: port 0: %w", i, errdefs.ErrInvalidArgument)
		}
		r.CIDR = r.CIDR.Masked()
		c.rules = append(c.rules, r)
	}
	c.domainPorts = DefaultDomainPorts
	if p.DomainPorts != nil {
		if slices.Contains(p.DomainPorts, 0) {
			return nil, fmt.Errorf("policy: domain port 0: %w", errdefs.ErrInvalidArgument)
		}
		c.domainPorts = slices.Clone(p.DomainPorts)
	}
	return c, nil
}

func (c *Compiled) addAllow(n, rule string) error {
	pt, err := compilePattern(n)
	if err != nil {
		return err
	}
	pt.rule = rule
	c.allow = append(c.allow, pt)
	return nil
}

// Policy returns a copy of the policy c was compiled from.
func (c *Compiled) Policy() Policy { return clonePolicy(c.src) }

// Permissive reports whether any public address is allowed.
func (c *Compiled) Permissive() bool { return c.permissive }

// AllowName decides whether name may be resolved and reached. Block wins
// over everything; then the first allow pattern that matches (profile,
// presets, Allow, in that order); then the permissive profile.
func (c *Compiled) AllowName(name string) Decision {
	name, ok := NormalizeName(name)
	if !ok {
		return Decision{Rule: "invalid-name"}
	}
	for _, p := range c.block {
		if p.match(name) {
			return Decision{Rule: p.rule}
		}
	}
	for _, p := range c.allow {
		if p.match(name) {
			return Decision{Allowed: true, Rule: p.rule}
		}
	}
	if c.permissive {
		return Decision{Allowed: true, Rule: "profile:permissive"}
	}
	return Decision{Rule: "default-deny"}
}

// AllowAddr decides whether a flow to ip:port over proto is allowed by a
// CIDR rule or the permissive profile alone, without any name. The caller
// has already refused forbidden ranges.
func (c *Compiled) AllowAddr(ip netip.Addr, port uint16, proto Proto) Decision {
	ip = ip.Unmap()
	for _, r := range c.rules {
		if !r.CIDR.Contains(ip) {
			continue
		}
		if r.Proto != "" && r.Proto != proto {
			continue
		}
		if len(r.Ports) > 0 && !slices.Contains(r.Ports, port) {
			continue
		}
		return Decision{Allowed: true, Rule: "cidr:" + r.CIDR.String()}
	}
	if c.permissive {
		return Decision{Allowed: true, Rule: "profile:permissive"}
	}
	return Decision{Rule: "default-deny"}
}

// DomainPort reports whether an allowed name may be reached on TCP port.
func (c *Compiled) DomainPort(port uint16) bool { return slices.Contains(c.domainPorts, port) }

// NormalizeName lowercases name, strips one trailing dot and reports whether
// the result is a syntactically valid DNS name (letters, digits, '-' and
// '_' in labels of 1 to 63 bytes, 253 bytes at most).
func NormalizeName(name string) (string, bool) {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" || len(name) > 253 {
		return "", false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
				return "", false
			}
		}
	}
	return name, true
}

func compilePattern(s string) (pattern, error) {
	wild := strings.HasPrefix(s, "*.")
	name, ok := NormalizeName(strings.TrimPrefix(s, "*."))
	if !ok {
		return pattern{}, fmt.Errorf("policy: invalid name pattern %q (want NAME or *.NAME): %w", s, errdefs.ErrInvalidArgument)
	}
	if wild && !strings.Contains(name, ".") {
		return pattern{}, fmt.Errorf("policy: wildcard %q covers a whole top-level domain: %w", s, errdefs.ErrInvalidArgument)
	}
	return pattern{name: name, wildcard: wild}, nil
}

func clonePolicy(p Policy) Policy {
	q := p
	q.Allow = slices.Clone(p.Allow)
	q.Block = slices.Clone(p.Block)
	q.Presets = slices.Clone(p.Presets)
	q.DomainPorts = slices.Clone(p.DomainPorts)
	q.Rules = make([]Rule, len(p.Rules))
	for i, r := range p.Rules {
		r.Ports = slices.Clone(r.Ports)
		q.Rules[i] = r
	}
	if p.Rules == nil {
		q.Rules = nil
	}
	return q
}
