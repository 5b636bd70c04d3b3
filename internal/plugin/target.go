package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Status is what a Change does to its file.
type Status int

const (
	StatusUnchanged Status = iota // nothing to do (already so)
	StatusCreated                 // the file is new
	StatusUpdated                 // the file is rewritten
	StatusRemoved                 // the file is removed
)

func (s Status) String() string {
	return [...]string{"unchanged", "created", "updated", "removed"}[s]
}

// DiffersError is an agentkernel entry (or file) that exists with other
// contents; installing over it needs --force.
type DiffersError struct {
	File string
	Key  string // the entry, or "" for the whole file
}

func (e *DiffersError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%s exists with other contents; use --force to replace it", e.File)
	}
	return fmt.Sprintf("%s already has a different %s entry; use --force to replace it", e.File, e.Key)
}

// ServerName is the MCP server's name in every agent's configuration.
const ServerName = "agentkernel"

// Env is where the configuration files are.
type Env struct {
	Bin        string // the agentkernel binary, absolute
	Home       string // the user's home directory
	ProjectDir string // the project (current) directory
	CodexHome  string // $CODEX_HOME, or "" for Home/.codex
	XDGConfig  string // $XDG_CONFIG_HOME, or "" for Home/.config
}

// EnvFromOS fills Env from the process: os.Executable, $HOME, the working
// directory, $CODEX_HOME and $XDG_CONFIG_HOME.
func EnvFromOS() (Env, error) {
	bin, err := os.Executable()
	if err != nil {
		return Env{}, fmt.Errorf("finding the agentkernel binary: %w", err)
	}
	if r, err := filepath.EvalSymlinks(bin); err == nil {
		bin = r
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return Env{}, err
	}
	wd, err := os.Getwd()
	if err != nil {
		return Env{}, err
	}
	return Env{Bin: bin, Home: home, ProjectDir: wd, CodexHome: os.Getenv("CODEX_HOME"), XDGConfig: os.Getenv("XDG_CONFIG_HOME")}, nil
}

// Target is an agent whose configuration can be edited.
type Target struct {
	Name        string
	Description string
	// NoProject: the agent has only a user configuration (--global implied).
	NoProject bool
	// PrintOnly: nothing is written; Snippet is printed.
	PrintOnly bool
}

// Targets are the supported agents, in listing order.
var Targets = []Target{
	{Name: "claude", Description: "Claude Code: .mcp.json (global ~/.claude.json) and a skill"},
	{Name: "codex", Description: "Codex: ~/.codex/config.toml", NoProject: true},
	{Name: "gemini", Description: "Gemini CLI: .gemini/settings.json (global ~/.gemini/settings.json)"},
	{Name: "opencode", Description: "OpenCode: opencode.json (global ~/.config/opencode/opencode.json)"},
	{Name: "mcp", Description: "any MCP client: prints the mcpServers JSON", PrintOnly: true},
}

// Lookup returns the target called name.
func Lookup(name string) (Target, error) {
	for _, t := range Targets {
		if t.Name == name {
			return t, nil
		}
	}
	names := make([]string, 0, len(Targets))
	for _, t := range Targets {
		names = append(names, t.Name)
	}
	sort.Strings(names)
	return Target{}, fmt.Errorf("unknown target %q (want one of %v)", name, names)
}

// stdioEntry is the mcpServers entry of Claude Code, Gemini CLI and the
// generic snippet.
func stdioEntry(bin string) map[string]any {
	return map[string]any{"command": bin, "args": []any{"mcp-server"}}
}

func opencodeEntry(bin string) map[string]any {
	return map[string]any{"type": "local", "command": []any{bin, "mcp-server"}, "enabled": true}
}

// Snippet is the generic MCP client configuration.
func Snippet(bin string) []byte {
	b, _ := encodeJSON(map[string]any{"mcpServers": map[string]any{ServerName: stdioEntry(bin)}})
	return b
}

// fileKind is how a file is edited.
type fileKind int

const (
	kindJSON fileKind = iota
	kindTOML
	kindSkill
)

// File is one configuration file of a target in a scope.
type File struct {
	Path   string
	Label  string // what it is, for listings: "mcp config" or "skill"
	Global bool
	kind   fileKind
	key    []string // JSON: the entry's path
	entry  any      // JSON: the entry
}

// Files returns the target's files in a scope (global or project).
func (t Target) Files(env Env, global bool) []File {
	if t.NoProject {
		global = true
	}
	var home = env.Home
	cfg := env.XDGConfig
	if cfg == "" {
		cfg = filepath.Join(home, ".config")
	}
	base := env.ProjectDir
	if global {
		base = home
	}
	switch t.Name {
	case "claude":
		mcp := filepath.Join(env.ProjectDir, ".mcp.json")
		if global {
			mcp = filepath.Join(home, ".claude.json")
		}
		return []File{
			{Path: mcp, Label: "mcp config", Global: global, kind: kindJSON, key: []string{"mcpServers", ServerName}, entry: stdioEntry(env.Bin)},
			{Path: filepath.Join(base, ".claude", "skills", ServerName, "SKILL.md"), Label: "skill", Global: global, kind: kindSkill},
		}
	case "codex":
		dir := env.CodexHome
		if dir == "" {
			dir = filepath.Join(home, ".codex")
		}
		return []File{{Path: filepath.Join(dir, "config.toml"), Label: "mcp config", Global: true, kind: kindTOML}}
	case "gemini":
		return []File{{Path: filepath.Join(base, ".gemini", "settings.json"), Label: "mcp config", Global: global, kind: kindJSON,
			key: []string{"mcpServers", ServerName}, entry: stdioEntry(env.Bin)}}
	case "opencode":
		p := filepath.Join(env.ProjectDir, "opencode.json")
		if global {
			p = filepath.Join(cfg, "opencode", "opencode.json")
		}
		return []File{{Path: p, Label: "mcp config", Global: global, kind: kindJSON, key: []string{"mcp", ServerName}, entry: opencodeEntry(env.Bin)}}
	}
	return nil
}

// ReadFunc reads a file: its contents and whether it exists.
type ReadFunc func(path string) ([]byte, bool, error)

// Change is the planned edit of one file. After is nil when the file is
// to be removed.
type Change struct {
	File   File
	Exists bool
	Before []byte
	After  []byte
	Status Status
}

// Plan computes the changes installing (or, with uninstall, removing) the
// target makes; nothing is written. Any error leaves nothing to do.
func (t Target) Plan(env Env, global, force, uninstall bool, read ReadFunc) ([]Change, error) {
	if t.PrintOnly {
		return nil, nil
	}
	var out []Change
	for _, f := range t.Files(env, global) {
		before, exists, err := read(f.Path)
		if err != nil {
			return nil, err
		}
		c := Change{File: f, Exists: exists, Before: before}
		switch {
		case uninstall && f.kind == kindSkill:
			if exists {
				c.Status = StatusRemoved
			} else {
				c.After, c.Status = before, StatusUnchanged
			}
		case uninstall && !exists:
			c.Status = StatusUnchanged
		case uninstall && f.kind == kindJSON:
			c.After, c.Status, err = UninstallJSON(f.Path, before, f.key)
		case uninstall && f.kind == kindTOML:
			c.After, c.Status, err = UninstallCodex(f.Path, before)
		case f.kind == kindSkill:
			c.After, c.Status, err = InstallFile(f.Path, before, exists, []byte(Skill), force)
		case f.kind == kindJSON:
			c.After, c.Status, err = InstallJSON(f.Path, before, f.key, f.entry, force)
		case f.kind == kindTOML:
			c.After, c.Status, err = InstallCodex(f.Path, before, env.Bin, force)
		}
		if err != nil {
			return nil, err
		}
		if c.Status == StatusUnchanged {
			c.After = before
		} else if !exists && c.Status == StatusUpdated {
			c.Status = StatusCreated
		}
		out = append(out, c)
	}
	return out, nil
}

// State is whether a file holds the agentkernel entry.
type State struct {
	File      File
	Exists    bool  // the file exists
	Installed bool  // the entry (or skill) is there
	Current   bool  // and is what install would write now
	Err       error // the file could not be read or parsed
}

// Inspect reports the target's state in a scope.
func (t Target) Inspect(env Env, global bool, read ReadFunc) []State {
	var out []State
	for _, f := range t.Files(env, global) {
		s := State{File: f}
		content, exists, err := read(f.Path)
		s.Exists = exists
		if err == nil && exists {
			switch f.kind {
			case kindJSON:
				s.Installed, s.Current, err = InspectJSON(f.Path, content, f.key, f.entry)
			case kindTOML:
				s.Installed, s.Current, err = InspectCodex(f.Path, content, env.Bin)
			case kindSkill:
				s.Installed, s.Current = true, string(content) == Skill
			}
		}
		s.Err = err
		out = append(out, s)
	}
	return out
}
