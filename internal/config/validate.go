package config

import (
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// sandboxNameRE matches the daemon's sandbox names.
var sandboxNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// Profiles and agents, by upstream's names.
var (
	profiles = []string{"permissive", "moderate", "restrictive"}
	agents   = []string{"claude", "codex", "gemini", "opencode"}
)

// validate records what is malformed (p.bad).
func (c *Config) validate(p *problems) {
	s := c.Sandbox
	if s.Name != "" && !sandboxNameRE.MatchString(s.Name) {
		p.bad("sandbox.name %q: use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit", s.Name)
	}
	if s.Runtime != "" {
		if _, ok := runtimeImages[s.Runtime]; !ok {
			p.bad("sandbox.runtime %q: use one of %s", s.Runtime, strings.Join(runtimeNames(), ", "))
		}
	}
	if s.BaseImage != "" && !validImageRef(s.BaseImage) {
		p.bad("sandbox.base_image %q: not an image name", s.BaseImage)
	}
	if len(s.InitScript) > MaxInitScript {
		p.bad("sandbox.init_script is longer than %d bytes", MaxInitScript)
	} else if strings.ContainsRune(s.InitScript, 0) {
		p.bad("sandbox.init_script contains a NUL byte")
	}
	if a := c.Agent.Preferred; a != "" && !slices.Contains(agents, a) {
		p.bad("agent.preferred %q: use one of %s", a, strings.Join(agents, ", "))
	}
	if m := c.Agent.CompatibilityMode; m != "" && m != "native" && !slices.Contains(agents, m) {
		p.bad("agent.compatibility_mode %q: use native or one of %s", m, strings.Join(agents, ", "))
	}
	if v := c.Resources.VCPUs; v != nil && (*v < 1 || *v > maxVCPUs) {
		p.bad("resources.vcpus %d: want 1 to %d", *v, maxVCPUs)
	}
	if v := c.Resources.MemoryMB; v != nil && (*v < 16 || *v > maxMemoryMB) {
		p.bad("resources.memory_mb %d: want 16 to %d", *v, maxMemoryMB)
	}
	if v := c.Resources.DiskMB; v != nil && (*v < 64 || *v > maxDiskMB) {
		p.bad("resources.disk_mb %d: want 64 to %d", *v, maxDiskMB)
	}
	if pr := c.Security.Profile; pr != "" && !slices.Contains(profiles, pr) {
		p.bad("security.profile %q: use one of %s", pr, strings.Join(profiles, ", "))
	}
	if len(c.Files) > MaxFiles {
		p.bad("%d [[files]] entries: at most %d", len(c.Files), MaxFiles)
		return
	}
	for i, f := range c.Files {
		at := "files[" + strconv.Itoa(i) + "]"
		switch {
		case f.Source == "":
			p.bad("%s.source is missing", at)
		case len(f.Source) > maxStringBytes || strings.ContainsRune(f.Source, 0):
			p.bad("%s.source is not a usable path", at)
		}
		switch {
		case f.Dest == "":
			p.bad("%s.dest is missing", at)
		case len(f.Dest) > maxStringBytes || strings.ContainsRune(f.Dest, 0):
			p.bad("%s.dest is not a usable path", at)
		case !strings.HasPrefix(f.Dest, "/"):
			p.bad("%s.dest %q must be an absolute path in the sandbox", at, f.Dest)
		case path.Clean(f.Dest) != f.Dest || f.Dest == "/" || strings.HasSuffix(f.Dest, "/"):
			p.bad("%s.dest %q must be a clean file path (no '..', '.', '//' or trailing '/')", at, f.Dest)
		}
		if _, err := parseMode(f.Mode); err != "" {
			p.bad("%s.mode %q: %s", at, f.Mode, err)
		}
	}
}

// refuseUnenforceable records what is well-formed but cannot be enforced
// by this agentkernel (p.refuse). See docs/CONFIG.md.
func (c *Config) refuseUnenforceable(p *problems) {
	if c.Build != nil {
		p.refuse("[build]: Dockerfile builds are not supported yet; build the image (agentkernel image build) and set sandbox.base_image")
	}
	if m := c.Agent.CompatibilityMode; m != "" && m != "native" && slices.Contains(agents, m) {
		p.refuse("agent.compatibility_mode %q: agent permission presets are not supported; set [security] explicitly", m)
	}
	if c.Network.VsockCID != nil {
		p.refuse("network.vsock_cid: vsock CIDs are assigned by agentkernel; remove the key")
	}
	for _, port := range c.Network.Ports {
		if _, err := publishSpec(port); err != nil {
			p.bad("network.ports: %v", err)
		}
	}
	sec := c.Security
	// network = true is the profile's network through the gateway; only
	// restrictive, which has none, contradicts it.
	if sec.Network != nil && *sec.Network && sec.Profile == "restrictive" {
		p.refuse(`security.network = true: profile = "restrictive" has no network; choose "moderate" or "permissive", or remove the key`)
	}
	if sec.MountCwd != nil && *sec.MountCwd {
		p.refuse("security.mount_cwd = true: agentkernel never mounts host directories implicitly; use --dir .:/workspace")
	}
	if sec.MountHome != nil && *sec.MountHome {
		p.refuse("security.mount_home = true: agentkernel never mounts the home directory; use --dir for what the sandbox needs")
	}
	if sec.PassEnv != nil && *sec.PassEnv {
		p.refuse("security.pass_env = true: the host environment is never passed into a sandbox; use -e KEY=VALUE")
	}
	restrictive := sec.Profile == "restrictive"
	if ro := sec.ReadOnly; ro != nil && *ro != restrictive {
		if *ro {
			p.refuse(`security.read_only = true: only profile = "restrictive" has a read-only root filesystem`)
		} else {
			p.refuse(`security.read_only = false: profile = "restrictive" always has a read-only root filesystem`)
		}
	}
	c.checkSeccomp(p, restrictive)
	if !sec.Domains.empty() && sec.Network != nil && !*sec.Network {
		p.refuse("[security.domains]: domain rules need a network, and security.network = false has none; remove one of them")
	}
	if !sec.Commands.empty() {
		p.refuse("[security.commands]: command filtering is not enforced by this agentkernel; remove the rules")
	}
	if len(c.Ports) > 0 {
		p.refuse(`[ports]: this table's form is not taken; publish with [network] ports = ["HOSTPORT:SANDBOXPORT"] or --publish`)
	}
}

// checkSeccomp accepts the seccomp name the profile already enforces.
// Upstream's "default" is Docker's filter (permissive and moderate here);
// "restrictive" (or our "strict") is the restrictive profile's.
func (c *Config) checkSeccomp(p *problems, restrictive bool) {
	name := c.Security.Seccomp
	want := "default"
	if restrictive {
		want = "restrictive"
	}
	switch {
	case name == "" || name == want || (restrictive && name == "strict"):
	case strings.ContainsAny(name, "/.") || strings.HasSuffix(name, ".json"):
		p.refuse("security.seccomp %q: custom seccomp files are not supported; each profile has its own filter", name)
	case slices.Contains([]string{"default", "moderate", "restrictive", "strict", "ai-agent"}, name):
		p.refuse("security.seccomp %q: the %s profile enforces the %q filter; choose the profile instead", name, orDefault(c.Security.Profile), want)
	default:
		p.bad("security.seccomp %q: unknown filter (default, restrictive)", name)
	}
}

func orDefault(profile string) string {
	if profile == "" {
		return "moderate"
	}
	return profile
}

// parseMode reads an octal file mode ("0644", "644", "0o644"); "" is 0644.
// The second result says what is wrong, or "".
func parseMode(s string) (uint32, string) {
	if s == "" {
		return 0o644, ""
	}
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0")
	if digits == "" {
		digits = "0"
	}
	if len(digits) > 3 {
		return 0, "want an octal mode from 0000 to 0777"
	}
	v, err := strconv.ParseUint(digits, 8, 32)
	if err != nil {
		return 0, "want an octal mode such as 0644"
	}
	return uint32(v), ""
}

// validImageRef is a loose check of an image reference; the daemon
// checks it for real. It keeps out what could be mistaken for a flag or
// break a message: whitespace, control characters, a leading '-'.
func validImageRef(s string) bool {
	if len(s) > 255 || strings.HasPrefix(s, "-") {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r > unicode.MaxASCII {
			return false
		}
	}
	return true
}
