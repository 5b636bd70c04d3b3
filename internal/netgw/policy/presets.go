package policy

import (
	"fmt"
	"slices"
	"sort"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Registries lists the package registries every non-restrictive profile and
// every agent preset allows. Hosts that serve arbitrary user content from a
// shared domain (cloud storage buckets) are left out on purpose: allowing one
// would allow exfiltration to any bucket.
var Registries = []string{
	// Go
	"proxy.golang.org", "sum.golang.org", "index.golang.org",
	// npm, yarn
	"registry.npmjs.org", "registry.yarnpkg.com",
	// Python
	"pypi.org", "files.pythonhosted.org",
	// Rust
	"crates.io", "index.crates.io", "static.crates.io",
	// Ruby
	"rubygems.org", "index.rubygems.org",
	// Java
	"repo.maven.apache.org", "repo1.maven.org",
	// Linux distributions
	"deb.debian.org", "security.debian.org", "archive.ubuntu.com", "security.ubuntu.com",
	"dl-cdn.alpinelinux.org",
}

// GitHosts lists the git forges allowed next to the registries. An agent can
// push to them as well as fetch: that is a deliberate trade (agents need git)
// that restrictive turns off.
var GitHosts = []string{
	"github.com", "api.github.com", "codeload.github.com",
	"objects.githubusercontent.com", "raw.githubusercontent.com",
	"gitlab.com", "bitbucket.org",
}

// ModerateAllow is the base allow-list of the Moderate profile: Registries
// and GitHosts.
var ModerateAllow = slices.Concat(Registries, GitHosts)

// agentHosts lists each agent preset's own API and login hosts.
var agentHosts = map[string][]string{
	"claude": {"api.anthropic.com", "console.anthropic.com", "statsig.anthropic.com"},
	"codex":  {"api.openai.com", "auth.openai.com", "chatgpt.com"},
	"gemini": {
		"generativelanguage.googleapis.com", "cloudcode-pa.googleapis.com",
		"oauth2.googleapis.com", "accounts.google.com",
	},
	"opencode": {"opencode.ai", "models.dev", "api.anthropic.com", "api.openai.com", "openrouter.ai"},
}

// registryHosts lists each registry preset's hosts: one package
// ecosystem each, for image builds that should reach exactly one registry
// ("--preset npm") rather than all of them.
var registryHosts = map[string][]string{
	"npm":      {"registry.npmjs.org", "registry.yarnpkg.com"},
	"pypi":     {"pypi.org", "files.pythonhosted.org"},
	"go":       {"proxy.golang.org", "sum.golang.org", "index.golang.org"},
	"crates":   {"crates.io", "index.crates.io", "static.crates.io"},
	"rubygems": {"rubygems.org", "index.rubygems.org"},
	"maven":    {"repo.maven.apache.org", "repo1.maven.org"},
	"debian":   {"deb.debian.org", "security.debian.org"},
	"ubuntu":   {"archive.ubuntu.com", "security.ubuntu.com"},
	"alpine":   {"dl-cdn.alpinelinux.org"},
}

// PresetNames returns every preset name (agents' and registries'), sorted.
func PresetNames() []string {
	names := make([]string, 0, len(agentHosts)+len(registryHosts))
	for n := range agentHosts {
		names = append(names, n)
	}
	for n := range registryHosts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Preset returns the names a preset allows: for an agent preset the
// agent's own API hosts followed by Registries and GitHosts; for a
// registry preset (npm, pypi, debian, …) that registry's hosts alone. An
// unknown preset is an error that wraps errdefs.ErrInvalidArgument.
func Preset(name string) ([]string, error) {
	if hosts, ok := registryHosts[name]; ok {
		return slices.Clone(hosts), nil
	}
	hosts, ok := agentHosts[name]
	if !ok {
		return nil, fmt.Errorf("policy: unknown preset %q (known: %v): %w", name, PresetNames(), errdefs.ErrInvalidArgument)
	}
	return slices.Concat(hosts, Registries, GitHosts), nil
}
