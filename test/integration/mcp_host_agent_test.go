package integration

import (
	"context"
	"encoding/json"
	"github.com/agentkernel/agentkernel/pkg/api"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/test/fakemodel"
)

// TestMCPHostAgent: Claude Code on the host, configured only by
// `agentkernel plugin install claude --global`, asks (as the fake model
// tells it to) agentkernel's sandbox_run to run a command: the command runs
// in a sandbox, not on the host, and its output reaches the model in the
// next request.
func TestMCPHostAgent(t *testing.T) {
	requireEnv(t)
	claude := filepath.Join(agentCLIsDir(), "bin", "claude")
	if _, err := os.Stat(claude); err != nil {
		t.Skipf("needs Claude Code on the host: run scripts/agent-clis.sh (%v)", err)
	}
	e := newEnv(t)
	e.ok(t, "sandbox", "list") // the daemon, before Claude Code starts mcp-server
	marker := "ran-in-sandbox-" + randomHex8()
	fake := fakemodel.New(fakemodel.Script{FinalText: "The sandbox said it.",
		Call: &fakemodel.ToolCall{Tool: "sandbox_run", Args: map[string]any{
			"command": []string{"sh", "-c", "echo " + marker + "; hostname; touch /tmp/" + marker}}}})
	srv := httptest.NewServer(fake)
	defer srv.Close()

	home, proj := t.TempDir(), t.TempDir()
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "AGENTKERNEL_HOME=" + e.home,
		"ANTHROPIC_BASE_URL=" + srv.URL, "ANTHROPIC_API_KEY=sk-test-host",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "DISABLE_AUTOUPDATER=1", "DISABLE_TELEMETRY=1", "IS_SANDBOX=1",
		// MCP tools are offered directly, not behind ToolSearch (the fake
		// model does not search).
		"ENABLE_TOOL_SEARCH=false"}
	install := exec.Command(akBin, "plugin", "install", "claude", "--global")
	install.Env, install.Dir = env, proj
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("plugin install claude --global: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, claude, "-p", "--dangerously-skip-permissions", "Run the check in a sandbox")
	cmd.Env, cmd.Dir = env, proj
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if reqs := fake.Requests(); len(reqs) > 0 {
			var body struct {
				Tools []struct{ Name string } `json:"tools"`
			}
			json.Unmarshal(reqs[0].Body, &body)
			t.Logf("tools offered in the first request: %v", body.Tools)
		}
		t.Fatalf("claude: %v\n%s\nfake model errors: %v", err, out, fake.Errors())
	}
	if !strings.Contains(string(out), "The sandbox said it.") {
		t.Errorf("claude's answer: %s", out)
	}
	// The tool's result, with the command's output, went back to the model.
	found := false
	for _, r := range fake.Requests() {
		if r.Kind == fakemodel.KindFinal && strings.Contains(string(r.Body), marker) {
			found = true
			if strings.Contains(string(r.Body), hostHostname(t)) && hostHostname(t) != "" {
				t.Errorf("the command's hostname is the host's: it ran on the host")
			}
		}
	}
	if !found {
		t.Errorf("no model request carried the sandbox's output %q; errors %v", marker, fake.Errors())
	}
	// Nothing ran on the host.
	if _, err := os.Stat("/tmp/" + marker); err == nil {
		os.Remove("/tmp/" + marker)
		t.Errorf("the command ran on the host (/tmp/%s exists)", marker)
	}
	// The daemon recorded the sandbox that ran it.
	if r := e.ok(t, "sandbox", "list", "--json"); strings.Contains(r.stdout, "agentkernel.mcp.session") {
		t.Errorf("the MCP session's sandbox is still there:\n%s", r.stdout)
	}
	// And the command is in the daemon's event record, after its ephemeral
	// sandbox is gone: started and finished with exit code 0.
	r := e.ok(t, "events", "--json")
	var started, finished bool
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var ev api.Event
		if json.Unmarshal([]byte(line), &ev) != nil || !strings.Contains(line, marker) {
			continue
		}
		started = started || ev.Event == "command_executed"
		finished = finished || ev.Event == "command_finished" && ev.Details["exit_code"] == float64(0)
	}
	if !started || !finished {
		t.Errorf("the command is not in the event record (started %v, finished %v):\n%s", started, finished, r.stdout)
	}
}

func hostHostname(t *testing.T) string {
	h, _ := os.Hostname()
	return h
}

func randomHex8() string {
	b := make([]byte, 4)
	f, err := os.Open("/dev/urandom")
	if err == nil {
		f.Read(b)
		f.Close()
	}
	const hexd = "0123456789abcdef"
	out := make([]byte, 8)
	for i, c := range b {
		out[2*i], out[2*i+1] = hexd[c>>4], hexd[c&15]
	}
	return string(out)
}
