package mcp

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/agentkernel/agentkernel/internal/daemonconf"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// DefaultMaxOutputBytes is Policy.MaxOutputBytes when it is zero.
const DefaultMaxOutputBytes = 1 << 20

// Profiles, from the most restrictive to the most permissive.
var profiles = []string{"restrictive", "moderate", "permissive"}

// Policy is what the user allows the MCP client, set when the server
// starts. A tool argument may narrow it, never widen it.
type Policy struct {
	// Profile is the most permissive security profile allowed
	// (restrictive < moderate < permissive); empty means moderate.
	Profile string
	// AllowedImages lists the images a tool may name; empty allows any.
	AllowedImages []string
	// MaxSandboxes is the most sandboxes one session may hold at once
	// (an ephemeral sandbox_run counts while it runs); 0 means no limit.
	MaxSandboxes int
	// MaxOutputBytes bounds each output stream and file read;
	// 0 means DefaultMaxOutputBytes.
	MaxOutputBytes int
	// AllowedDomains, when set, is the whole egress allow-list of every
	// sandbox a tool creates (restrictive network profile plus these
	// names: "example.com", "*.example.com"); a tool's "allow" may name a
	// subset. Empty keeps the sandbox profile's own network and refuses
	// any "allow" from a tool.
	AllowedDomains []string
	// HostDirs are the host directories sandbox_upload_dir and
	// sandbox_download_dir may read and write, symlinks resolved; empty
	// refuses both tools.
	HostDirs []string
}

// WithConfig returns p with what daemon.toml's [mcp] sets replacing its
// fields; unset keys keep p's.
func (p Policy) WithConfig(c daemonconf.MCP) Policy {
	if c.Profile != "" {
		p.Profile = c.Profile
	}
	if c.Images != nil {
		p.AllowedImages = c.Images
	}
	if c.MaxSandboxes != nil {
		p.MaxSandboxes = *c.MaxSandboxes
	}
	if c.MaxOutputBytes > 0 {
		p.MaxOutputBytes = c.MaxOutputBytes
	}
	if c.AllowedDomains != nil {
		p.AllowedDomains = c.AllowedDomains
	}
	if c.HostDirs != nil {
		p.HostDirs = c.HostDirs
	}
	return p
}

// Check reports what is wrong with p (an unknown profile, a bad domain, a
// host directory that does not exist), for a server to refuse to start
// with it rather than run with a policy other than the user's.
func (p Policy) Check() error {
	_, err := p.clone().withDefaults()
	return err
}

func (p Policy) clone() Policy {
	p.AllowedImages = slices.Clone(p.AllowedImages)
	p.AllowedDomains = slices.Clone(p.AllowedDomains)
	p.HostDirs = slices.Clone(p.HostDirs)
	return p
}

func (p Policy) withDefaults() (Policy, error) {
	p = p.clone()
	if p.Profile == "" {
		p.Profile = "moderate"
	}
	if profileRank(p.Profile) < 0 {
		return p, fmt.Errorf("unknown profile %q (want one of %s)", p.Profile, strings.Join(profiles, ", "))
	}
	if p.MaxOutputBytes <= 0 {
		p.MaxOutputBytes = DefaultMaxOutputBytes
	}
	for i, d := range p.AllowedDomains {
		n, err := normalizeDomain(d)
		if err != nil {
			return p, err
		}
		p.AllowedDomains[i] = n
	}
	dirs, err := resolveHostDirs(p.HostDirs)
	if err != nil {
		return p, err
	}
	p.HostDirs = dirs
	return p, nil
}

func profileRank(p string) int { return slices.Index(profiles, p) }

// profile returns the profile to use for a request of asked (empty: the
// policy's own), or an error naming the limit when asked is wider.
func (p Policy) profile(asked string) (string, error) {
	if asked == "" {
		return p.Profile, nil
	}
	r := profileRank(asked)
	if r < 0 {
		return "", fmt.Errorf("unknown profile %q (want one of %s)", asked, strings.Join(profiles, ", "))
	}
	if r > profileRank(p.Profile) {
		return "", fmt.Errorf("profile %q is not allowed: this MCP server allows at most %q", asked, p.Profile)
	}
	return asked, nil
}

// image returns the image to use for a request of asked, or an error when
// it is not in AllowedImages. With an allow list and no image asked for,
// the first allowed image is used.
func (p Policy) image(asked string) (string, error) {
	if len(p.AllowedImages) == 0 {
		return asked, nil
	}
	if asked == "" {
		return p.AllowedImages[0], nil
	}
	if !slices.Contains(p.AllowedImages, asked) {
		return "", fmt.Errorf("image %q is not allowed: this MCP server allows %s", asked, strings.Join(p.AllowedImages, ", "))
	}
	return asked, nil
}

// network returns the egress policy of a sandbox a tool creates with the
// domains asked for (nil: the policy's default), or an error naming the
// limit when one is not covered by AllowedDomains.
func (p Policy) network(asked []string) (*api.NetworkPolicy, error) {
	if len(p.AllowedDomains) == 0 {
		if len(asked) > 0 {
			return nil, errors.New("allow is not allowed: this MCP server allows no domains beyond its profile's (--allow-domain)")
		}
		return nil, nil
	}
	if asked == nil {
		return &api.NetworkPolicy{Profile: "restrictive", Allow: slices.Clone(p.AllowedDomains)}, nil
	}
	allow := []string{}
	for _, a := range asked {
		n, err := normalizeDomain(a)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(p.AllowedDomains, func(d string) bool { return domainCovers(d, n) }) {
			return nil, fmt.Errorf("domain %q is not allowed: this MCP server allows %s", a, strings.Join(p.AllowedDomains, ", "))
		}
		allow = append(allow, n)
	}
	return &api.NetworkPolicy{Profile: "restrictive", Allow: allow}, nil
}

// normalizeDomain lowercases d and drops a trailing dot; it refuses what
// is not a name or a "*." wildcard over one.
func normalizeDomain(d string) (string, error) {
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
	bare := strings.TrimPrefix(n, "*.")
	if bare == "" || len(n) > 253 || strings.ContainsAny(bare, "*/:@ ") || strings.HasPrefix(bare, ".") || strings.Contains(bare, "..") {
		return "", fmt.Errorf("domain %q: want a name such as example.com or *.example.com", clip(d))
	}
	return n, nil
}

// domainCovers reports whether the allowed pattern d covers the asked
// pattern n: equal, or d is *.X and n is X's subdomain or a wildcard
// under it.
func domainCovers(d, n string) bool {
	if d == n {
		return true
	}
	if suffix, ok := strings.CutPrefix(d, "*"); ok {
		return strings.HasSuffix(strings.TrimPrefix(n, "*"), suffix)
	}
	return false
}

// clip bounds what an error message repeats of one input.
func clip(s string) string {
	const max = 256
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", strings.ToValidUTF8(s[:max], ""), len(s))
}
