package mcp

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
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
}

func (p Policy) withDefaults() (Policy, error) {
	if p.Profile == "" {
		p.Profile = "moderate"
	}
	if profileRank(p.Profile) < 0 {
		return p, fmt.Errorf("unknown profile %q (want one of %s)", p.Profile, strings.Join(profiles, ", "))
	}
	if p.MaxOutputBytes <= 0 {
		p.MaxOutputBytes = DefaultMaxOutputBytes
	}
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

// truncateMiddle keeps s whole up to max bytes; beyond that it keeps the
// head and tail and puts in the middle a note saying how many bytes were
// cut. The result, note included, is at most max bytes (for max >= 64).
// It reports whether s was cut.
func truncateMiddle(s string, max int) (string, bool) {
	if len(s) <= max {
		return s, false
	}
	// The note's length depends on the count; size it for the widest.
	noteFor := func(cut int) string {
		return fmt.Sprintf("\n[... agentkernel: %d bytes truncated ...]\n", cut)
	}
	keep := max - len(noteFor(len(s)))
	if keep < 0 {
		keep = 0
	}
	head := keep / 2
	tailStart := len(s) - (keep - head)
	// Cut on rune boundaries so the kept text stays valid UTF-8.
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	for tailStart < len(s) && !utf8.RuneStart(s[tailStart]) {
		tailStart++
	}
	return s[:head] + noteFor(tailStart-head) + s[tailStart:], true
}
