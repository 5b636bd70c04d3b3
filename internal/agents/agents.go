// Package agents defines the AI coding agents agentkernel runs in
// sandboxes (Claude Code, Codex, Gemini CLI, OpenCode): the npm package and
// version of each CLI, the image it runs in (built here from Debian
// packages and the npm registry, never from a downloaded installer), where
// its API key goes (a secret bound to the API host, injected by the
// sandbox's gateway; the sandbox sees only a placeholder), how it runs
// unattended, and what it must not phone home to.
//
// It is a leaf of plain data and pure functions; the CLI builds the images
// (images.go) and the sandbox manager applies the templates.
package agents

import (
	"fmt"
	"slices"
	"sort"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Agent is one AI coding agent.
type Agent struct {
	// Name is what users type: claude, codex, gemini, opencode.
	Name string
	// Title is the product's name, for humans.
	Title string
	// Package and Version pin the CLI's npm package.
	Package, Version string
	// Binary is the CLI's command.
	Binary string
	// Preset is the network preset its sandboxes get (its API hosts plus
	// the package registries and git hosts).
	Preset string
	// Key is how its API key reaches the API.
	Key KeyBinding
	// Env is set in its image: telemetry, update checks and other
	// phoning home off, and what unattended use needs.
	Env []string
	// Files are written into the developer's home in its image (path
	// relative to the home, content): settings that cannot be given by
	// environment.
	Files map[string]string
	// Unattended returns the command line that runs the agent
	// non-interactively on a prompt, with what it needs to act without
	// asking (inside a sandbox that is the point).
	Unattended func(prompt []string) []string
}

// KeyBinding says which variable holds an agent's API key on the user's
// side and in the sandbox, the API host the gateway adds it to, and the
// header it goes in.
type KeyBinding struct {
	// Vars are the variables the key may come from, in order; the first
	// is the one set (to a placeholder) in the sandbox.
	Vars []string
	// Host is the API host the gateway injects the key for.
	Host string
	// Header is the header name ("x-api-key", "Authorization" (sent as
	// "Bearer KEY"), "x-goog-api-key").
	Header string
}

// Binding is the sandbox's secret binding for the key held in vault entry
// name: "NAME:host:header" (see secrets.ParseBinding). The sandbox's
// variable is the agent's first Var.
func (k KeyBinding) Binding(name string) string { return name + ":" + k.Host + ":" + k.Header }

// User is the non-root user agents run as in their images; its home holds
// the agent's configuration. Claude Code refuses to skip its permission
// prompts as root, and nothing else needs root either.
const (
	User    = "developer"
	UserUID = 1000
	Home    = "/home/" + User
	// Workdir is where the project is copied in (`--dir`).
	Workdir = "/workspace"
)

// all is every agent, by name.
var all = map[string]*Agent{}

func register(a *Agent) *Agent {
	all[a.Name] = a
	return a
}

// Get returns the agent called name, or an error naming the known ones.
func Get(name string) (*Agent, error) {
	if a, ok := all[name]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("%w: unknown agent %q (known: %v)", errdefs.ErrInvalidArgument, name, Names())
}

// Names returns the agents' names, sorted.
func Names() []string {
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// All returns every agent, sorted by name.
func All() []*Agent {
	out := make([]*Agent, 0, len(all))
	for _, n := range Names() {
		out = append(out, all[n])
	}
	return out
}

// withPrompt appends the prompt words to argv.
func withPrompt(argv []string, prompt []string) []string {
	return append(slices.Clone(argv), prompt...)
}
