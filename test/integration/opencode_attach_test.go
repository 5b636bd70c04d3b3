package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// agentCLIsDir is where scripts/agent-clis.sh installs the agent CLIs for
// the host.
func agentCLIsDir() string {
	if d := os.Getenv("AK_AGENT_CLIS_DIR"); d != "" {
		return d
	}
	return "/var/cache/agentkernel/agent-clis"
}

// TestOpenCodeAttach drives the real OpenCode TUI, `opencode attach`, in a
// tmux terminal against serve's /opencode route: the proxy provisions an
// OpenCode sandbox (its real image) whose model is the fake server; a
// prompt typed into the TUI brings the fake model's answer onto the
// screen, and a second one, after more than two minutes, too, which needs
// the TUI's event stream through the proxy to have stayed open.
func TestOpenCodeAttach(t *testing.T) {
	requireEnv(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("needs tmux (scripts/setup.sh installs it)")
	}
	bin := filepath.Join(agentCLIsDir(), "bin", "opencode")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("needs the OpenCode CLI on the host: run scripts/agent-clis.sh (%v)", err)
	}
	port := freePort(t)
	w := newAgentWorld(t, "--port", strconv.Itoa(port))
	if r := w.e.akIn(t, strings.NewReader("sk-test-attach\n"), "secret", "set", "ANTHROPIC_API_KEY"); r.code != 0 {
		t.Fatalf("secret set: %v", r)
	}
	tokb, err := os.ReadFile(filepath.Join(w.e.home, "token"))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(tokb))
	home := t.TempDir()
	sock := filepath.Join(t.TempDir(), "tmux.sock")
	tmux := func(args ...string) (string, error) {
		var out []byte
		var err error
		w.inWorld(t, func() { // the daemon's TCP port is in the world
			cmd := exec.Command("tmux", append([]string{"-S", sock}, args...)...)
			cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "TERM=xterm-256color",
				"OPENCODE_DISABLE_AUTOUPDATE=1", "OPENCODE_DISABLE_MODELS_FETCH=1"}
			out, err = cmd.CombinedOutput()
		})
		return string(out), err
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/opencode"
	if out, err := tmux("new-session", "-d", "-s", "oc", "-x", "160", "-y", "48", bin+" attach "+url+" --password "+tok); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	t.Cleanup(func() { tmux("kill-server") })
	screen := func() string { s, _ := tmux("capture-pane", "-p", "-t", "oc"); return s }
	waitScreen := func(what string, d time.Duration, cond func(string) bool) {
		t.Helper()
		if !waitFor(d, func() bool { return cond(screen()) }) {
			t.Fatalf("%s; the screen:\n%s", what, screen())
		}
	}
	// The TUI is up once it draws its status line, which names the
	// sandbox's working directory: it reached the server in the sandbox.
	waitScreen("the TUI did not come up", 90*time.Second, func(s string) bool {
		return strings.Contains(s, "ctrl+p") && strings.Contains(s, "/workspace")
	})
	if got := w.e.ok(t, "sandbox", "list").stdout; !strings.Contains(got, "opencode-attach") {
		t.Fatalf("no opencode-attach sandbox:\n%s", got)
	}
	prompt := func(text string) {
		t.Helper()
		if out, err := tmux("send-keys", "-t", "oc", "-l", text); err != nil {
			t.Fatalf("send-keys: %v %s", err, out)
		}
		tmux("send-keys", "-t", "oc", "Enter")
	}
	prompt("Create the file hello.txt with a greeting")
	waitScreen("the model's answer did not appear", 90*time.Second, func(s string) bool { return strings.Contains(s, agentFinal) })
	if os.Getenv("AK_ATTACH_SCREEN") != "" {
		t.Logf("the screen:\n%s", screen())
	}
	if os.Getenv("AK_ATTACH_QUICK") != "" { // while working on this test
		return
	}
	// Past two minutes, the event stream still carries the answer.
	time.Sleep(125 * time.Second)
	before := w.fake.Count("final")
	prompt("And now say it again")
	if !waitFor(60*time.Second, func() bool { return w.fake.Count("final") > before }) {
		t.Fatalf("the second prompt did not reach the model; the screen:\n%s", screen())
	}
	waitScreen("the second answer did not appear", 60*time.Second, func(s string) bool { return strings.Count(s, agentFinal) >= 2 })
	w.e.ok(t, "sandbox", "remove", "opencode-attach")
}
