package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/cli"
)

// The CLI's tests live here (package plugin_test may import internal/cli).

// setup gives the test a temporary home and project (the working
// directory); the binary is the test's own.
func setup(t *testing.T) (home, proj, bin string) {
	root := t.TempDir()
	home, proj = filepath.Join(root, "home"), filepath.Join(root, "proj")
	os.MkdirAll(home, 0o755)
	os.MkdirAll(proj, 0o755)
	t.Setenv("HOME", home)
	t.Setenv("CODEX_HOME", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Chdir(proj)
	bin, _ = os.Executable()
	if r, err := filepath.EvalSymlinks(bin); err == nil {
		bin = r
	}
	return home, proj, bin
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := cli.NewRootCmd(cli.NewApp())
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(""))
	root.SetOut(&out)
	root.SetErr(&errb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := cli.Execute(ctx, root)
	return out.String(), errb.String(), code
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCLIInstallClaudeProject(t *testing.T) {
	home, proj, bin := setup(t)
	mcp := filepath.Join(proj, ".mcp.json")
	os.WriteFile(mcp, []byte(`{"mcpServers":{"other":{"command":"o"}}}`), 0o600)

	// Dry run: a diff, nothing written.
	out, errOut, code := run(t, "plugin", "install", "claude", "--dry-run")
	if code != 0 || !strings.Contains(out, "--- "+mcp) || !strings.Contains(out, `+      "command": "`+bin+`"`) ||
		!strings.Contains(out, "+++ "+filepath.Join(proj, ".claude/skills/agentkernel/SKILL.md")) || !strings.Contains(errOut, "nothing written") {
		t.Fatalf("dry run: %d\n%s\n%s", code, out, errOut)
	}
	if read(t, mcp) != `{"mcpServers":{"other":{"command":"o"}}}` {
		t.Fatal("dry run wrote")
	}
	if _, err := os.Stat(filepath.Join(proj, ".claude")); err == nil {
		t.Fatal("dry run created the skill")
	}

	out, errOut, code = run(t, "plugin", "install", "claude")
	if code != 0 || !strings.Contains(out, "updated "+mcp) || !strings.Contains(out, "created ") {
		t.Fatalf("install: %d\n%s\n%s", code, out, errOut)
	}
	var doc struct {
		MCPServers map[string]struct {
			Command string
			Args    []string
		}
	}
	if err := json.Unmarshal([]byte(read(t, mcp)), &doc); err != nil || doc.MCPServers["other"].Command != "o" ||
		doc.MCPServers["agentkernel"].Command != bin || strings.Join(doc.MCPServers["agentkernel"].Args, " ") != "mcp-server" {
		t.Fatalf("%v\n%s", err, read(t, mcp))
	}
	if fi, _ := os.Stat(mcp); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	skill := read(t, filepath.Join(proj, ".claude/skills/agentkernel/SKILL.md"))
	if !strings.HasPrefix(skill, "---\nname: agentkernel\n") {
		t.Fatal(skill)
	}
	first := read(t, mcp)
	out, _, code = run(t, "plugin", "install", "claude")
	if code != 0 || strings.Count(out, "already installed") != 2 || read(t, mcp) != first {
		t.Fatalf("second install: %d\n%s", code, out)
	}

	out, _, code = run(t, "plugin", "list")
	if code != 0 || !regexpLine(out, "claude", "project", "mcp config", "installed", mcp) || !regexpLine(out, "gemini", "project", "not installed") {
		t.Fatalf("list:\n%s", out)
	}
	out, _, code = run(t, "--json", "plugin", "list")
	var rows []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || rows[0]["target"] != "claude" || rows[0]["installed"] != true {
		t.Fatalf("list --json:\n%s", out)
	}

	out, _, code = run(t, "plugin", "uninstall", "claude")
	if code != 0 || !strings.Contains(out, "removed the agentkernel entry from "+mcp) {
		t.Fatalf("uninstall: %d\n%s", code, out)
	}
	doc.MCPServers = nil
	if err := json.Unmarshal([]byte(read(t, mcp)), &doc); err != nil || len(doc.MCPServers) != 1 || doc.MCPServers["other"].Command != "o" {
		t.Fatal(read(t, mcp))
	}
	if _, err := os.Stat(filepath.Join(proj, ".claude/skills/agentkernel")); err == nil {
		t.Fatal("skill left")
	}
	if _, err := os.Stat(filepath.Join(home, ".claude.json")); err == nil {
		t.Fatal("project install touched the home")
	}
}

// regexpLine reports whether a line of out has all the words in order.
func regexpLine(out string, words ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		rest, ok := l, true
		for _, w := range words {
			i := strings.Index(rest, w)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(w):]
		}
		if ok {
			return true
		}
	}
	return false
}

func TestCLIErrors(t *testing.T) {
	home, proj, _ := setup(t)
	gem := filepath.Join(proj, ".gemini", "settings.json")
	os.MkdirAll(filepath.Dir(gem), 0o755)
	os.WriteFile(gem, []byte("{not json"), 0o644)
	if _, e, code := run(t, "plugin", "install", "gemini"); code == 0 || !strings.Contains(e, gem) || !strings.Contains(e, "not valid JSON") {
		t.Fatalf("invalid JSON: %d %s", code, e)
	}
	if read(t, gem) != "{not json" {
		t.Fatal("invalid file changed")
	}
	// A differing entry needs --force.
	oc := filepath.Join(home, ".config", "opencode", "opencode.json")
	os.MkdirAll(filepath.Dir(oc), 0o700)
	os.WriteFile(oc, []byte(`{"$schema":"https://opencode.ai/config.json","mcp":{"agentkernel":{"type":"local","command":["/old","mcp-server"]}}}`), 0o644)
	if _, e, code := run(t, "plugin", "install", "opencode", "--global"); code == 0 || !strings.Contains(e, oc) || !strings.Contains(e, "--force") {
		t.Fatalf("differs: %d %s", code, e)
	}
	if out, e, code := run(t, "plugin", "install", "opencode", "--global", "--force"); code != 0 || !strings.Contains(out, "updated "+oc) {
		t.Fatalf("force: %d %s %s", code, out, e)
	}
	if s := read(t, oc); !strings.Contains(s, `"$schema": "https://opencode.ai/config.json"`) || strings.Contains(s, "/old") {
		t.Fatal(s)
	}
	if _, e, code := run(t, "plugin", "install", "vim"); code == 0 || !strings.Contains(e, "unknown target") {
		t.Fatalf("unknown: %d %s", code, e)
	}
}

func TestCLICodexAndMCP(t *testing.T) {
	home, _, bin := setup(t)
	out, e, code := run(t, "plugin", "install", "codex")
	cfg := filepath.Join(home, ".codex", "config.toml")
	if code != 0 || !strings.Contains(e, "--global implied") || !strings.Contains(out, "created "+cfg) {
		t.Fatalf("codex: %d %s %s", code, out, e)
	}
	if fi, _ := os.Stat(cfg); fi.Mode().Perm() != 0o600 {
		t.Fatal(fi.Mode())
	}
	if d, _ := os.Stat(filepath.Dir(cfg)); d.Mode().Perm() != 0o700 {
		t.Fatal(d.Mode())
	}
	if s := read(t, cfg); !strings.Contains(s, "[mcp_servers.agentkernel]\ncommand = \""+bin+"\"\nargs = [\"mcp-server\"]\n") {
		t.Fatal(s)
	}
	t.Setenv("CODEX_HOME", filepath.Join(home, "ch"))
	if out, _, code := run(t, "plugin", "install", "codex", "--global"); code != 0 || !strings.Contains(out, filepath.Join(home, "ch", "config.toml")) {
		t.Fatal(out)
	}

	out, _, code = run(t, "plugin", "install", "mcp")
	var doc map[string]map[string]map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc["mcpServers"]["agentkernel"]["command"] != bin {
		t.Fatalf("mcp: %s", out)
	}
	entries, _ := os.ReadDir(home)
	for _, e := range entries {
		if e.Name() != ".codex" && e.Name() != "ch" {
			t.Errorf("unexpected %s in home", e.Name())
		}
	}
}

// TestCLISetupOffersPlugins: setup ends by offering the MCP server to the
// agent CLIs on PATH: without a terminal it prints the command; with
// --plugins it installs (for the user); a second run finds it configured.
// The agents here are stand-in executables on a PATH the test makes: only
// their presence is looked at.
func TestCLISetupOffersPlugins(t *testing.T) {
	home, _, bin := setup(t)
	binDir := t.TempDir()
	for _, name := range []string{"claude", "gemini"} {
		os.WriteFile(filepath.Join(binDir, name), []byte("#!/bin/sh\n"), 0o755)
	}
	t.Setenv("PATH", binDir)
	prev := cli.SetupFunc
	cli.SetupFunc = func(context.Context, bool, func(string, ...any)) error { return nil }
	t.Cleanup(func() { cli.SetupFunc = prev })

	out, errOut, code := run(t, "setup", "--skip-disk")
	if code != 0 || !strings.Contains(out, "agentkernel plugin install claude --global") ||
		!strings.Contains(out, "agentkernel plugin install gemini --global") || strings.Contains(out, "codex") {
		t.Fatalf("setup: %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(home, ".claude.json")); err == nil {
		t.Fatal("setup without --plugins wrote the configuration")
	}
	out, errOut, code = run(t, "setup", "--skip-disk", "--plugins")
	if code != 0 || !strings.Contains(read(t, filepath.Join(home, ".claude.json")), bin) ||
		!strings.Contains(read(t, filepath.Join(home, ".gemini", "settings.json")), bin) {
		t.Fatalf("setup --plugins: %d\n%s\n%s", code, out, errOut)
	}
	out, _, _ = run(t, "setup", "--skip-disk")
	if strings.Count(out, "the agentkernel MCP server is configured") != 2 {
		t.Errorf("second setup:\n%s", out)
	}
}
