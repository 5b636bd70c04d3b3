package plugin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agentCLIs is where the host keeps the agents' own CLIs, if at all.
const agentCLIs = "/var/cache/agentkernel/agent-clis/bin"

// TestAgentsSeeTheServer installs each target into a temporary home and
// project and asks the agent itself (its `mcp list`) whether it sees the
// agentkernel server. The configured binary is a stub that exits at once,
// so no agent starts a daemon; the check is that the server is listed with
// the right command.
func TestAgentsSeeTheServer(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the agent CLIs' own mcp list commands")
	}
	for _, name := range []string{"claude", "codex", "gemini", "opencode"} {
		t.Run(name, func(t *testing.T) {
			cli := filepath.Join(agentCLIs, name)
			if _, err := os.Stat(cli); err != nil {
				t.Skipf("%s is not installed under %s: run scripts/agent-clis.sh", name, agentCLIs)
			}
			tg, _ := Lookup(name)
			for _, global := range []bool{false, true} {
				if tg.NoProject && !global {
					continue
				}
				root := t.TempDir()
				env := Env{Home: filepath.Join(root, "home"), ProjectDir: filepath.Join(root, "proj"), Bin: filepath.Join(root, "bin", "agentkernel")}
				for _, d := range []string{env.Home, env.ProjectDir, filepath.Dir(env.Bin)} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(env.Bin, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				ch, err := tg.Plan(env, global, false, false, ReadOS)
				if err != nil {
					t.Fatal(err)
				}
				if err := Apply(ch); err != nil {
					t.Fatal(err)
				}
				out := runAgent(t, cli, env, "mcp", "list")
				t.Logf("%s mcp list (global=%v):\n%s", name, global, out)
				if !strings.Contains(out, "agentkernel") || !strings.Contains(out, env.Bin) {
					t.Errorf("%s mcp list (global=%v) does not show the agentkernel server with %s:\n%s", name, global, env.Bin, out)
				}
				if !strings.Contains(out, "mcp-server") {
					t.Errorf("%s mcp list (global=%v) does not show the mcp-server argument:\n%s", name, global, out)
				}
				ch, err = tg.Plan(env, global, false, true, ReadOS)
				if err != nil {
					t.Fatal(err)
				}
				if err := Apply(ch); err != nil {
					t.Fatal(err)
				}
				if out := runAgent(t, cli, env, "mcp", "list"); strings.Contains(out, env.Bin) {
					t.Errorf("%s mcp list (global=%v) still shows the server after uninstall:\n%s", name, global, out)
				}
			}
		})
	}
}

// runAgent runs an agent CLI in the project directory with a clean
// environment whose HOME (and CODEX_HOME) is the temporary home.
func runAgent(t *testing.T, cli string, env Env, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Dir = env.ProjectDir
	cmd.Env = []string{
		"PATH=" + agentCLIs + ":/usr/local/bin:/usr/bin:/bin",
		"HOME=" + env.Home,
		"CODEX_HOME=" + filepath.Join(env.Home, ".codex"),
		"TERM=dumb", "NO_COLOR=1", "CI=1",
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v timed out after 60 s:\n%s", cli, args, out)
	}
	if err != nil {
		t.Logf("%s %v: %v", cli, args, err)
	}
	return string(out)
}
