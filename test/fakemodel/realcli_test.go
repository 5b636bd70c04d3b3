package fakemodel_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/test/fakemodel"
)

// cliTimeout bounds one CLI run.
const cliTimeout = 3 * time.Minute

// cliDir is where scripts/agent-clis.sh installs the agent CLIs.
func cliDir() string {
	if d := os.Getenv("AGENT_CLIS_DIR"); d != "" {
		return d
	}
	return "/var/cache/agentkernel/agent-clis"
}

// cliRun is one CLI invocation being set up.
type cliRun struct {
	t       *testing.T
	home    string // the fresh HOME
	work    string // the fresh working directory
	baseURL string // the fake, http://127.0.0.1:PORT
	env     []string
	args    []string
	uid     int // the user the CLI runs as, -1 for the test's own
}

// file writes a config file under HOME.
func (r *cliRun) file(rel, content string) {
	r.t.Helper()
	p := filepath.Join(r.home, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// agentCase is how to run one agent CLI unattended against the fake.
type agentCase struct {
	name   string
	bin    string // the CLI, if not name
	api    fakemodel.API
	header string // where the API key must arrive
	key    string
	setup  func(r *cliRun, prompt string)
}

// codexSetup configures Codex CLI: a custom model provider (the built-in
// OpenAI one tries a WebSocket first), no analytics (ab.chatgpt.com,
// chatgpt.com), no plugin marketplace sync (github.com, api.github.com).
func codexSetup(r *cliRun, prompt, model string) {
	config := ""
	if model != "" {
		config = fmt.Sprintf("model = %q\n", model)
	}
	r.file(".codex/config.toml", config+fmt.Sprintf(`model_provider = "fake"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[model_providers.fake]
name = "fake"
base_url = "%s/v1"
env_key = "OPENAI_API_KEY"
wire_api = "responses"

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
apps = false
remote_plugin = false
`, r.baseURL))
	r.env = append(r.env,
		"CODEX_HOME="+filepath.Join(r.home, ".codex"),
		"OPENAI_API_KEY=sk-fake-codex-key",
	)
	r.args = []string{"exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "--color", "never", prompt}
}

var agentCases = []agentCase{
	{
		name: "claude", api: fakemodel.Anthropic, header: "x-api-key", key: "sk-ant-fake-claude-key",
		setup: func(r *cliRun, prompt string) {
			r.env = append(r.env,
				"ANTHROPIC_BASE_URL="+r.baseURL,
				"ANTHROPIC_API_KEY=sk-ant-fake-claude-key",
				// No telemetry, error reports, update checks or other calls
				// to Anthropic's hosts; no auto-updater.
				"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
				"DISABLE_AUTOUPDATER=1",
				"DISABLE_TELEMETRY=1",
				"DISABLE_ERROR_REPORTING=1",
			)
			r.args = []string{"-p", prompt, "--dangerously-skip-permissions", "--output-format", "text"}
		},
	},
	{
		// Codex with a model it knows (its default): tools come in an
		// additional_tools input item, in "code mode" (a JavaScript exec tool).
		name: "codex", api: fakemodel.OpenAIResponses, header: "authorization", key: "sk-fake-codex-key",
		setup: func(r *cliRun, prompt string) { codexSetup(r, prompt, "") },
	},
	{
		// Codex with a model it has no metadata for: classic function tools
		// (exec_command).
		name: "codex-unknown-model", bin: "codex", api: fakemodel.OpenAIResponses, header: "authorization", key: "sk-fake-codex-key",
		setup: func(r *cliRun, prompt string) { codexSetup(r, prompt, "gpt-fake-unknown") },
	},
	{
		name: "gemini", api: fakemodel.Gemini, header: "x-goog-api-key", key: "fake-gemini-key",
		setup: func(r *cliRun, prompt string) {
			r.file(".gemini/settings.json", `{
  "security": {"auth": {"selectedType": "gemini-api-key"}},
  "privacy": {"usageStatisticsEnabled": false},
  "telemetry": {"enabled": false},
  "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false}
}
`)
			r.env = append(r.env,
				"GEMINI_API_KEY=fake-gemini-key",
				"GOOGLE_GEMINI_BASE_URL="+r.baseURL,
				"GEMINI_CLI_TRUST_WORKSPACE=true",
			)
			r.args = []string{"-p", prompt, "--approval-mode", "yolo"}
		},
	},
	{
		name: "opencode", api: fakemodel.Anthropic, header: "x-api-key", key: "sk-ant-fake-opencode-key",
		setup: func(r *cliRun, prompt string) {
			r.file(".config/opencode/opencode.json", fmt.Sprintf(`{
  "$schema": "https://opencode.ai/config.json",
  "model": "anthropic/claude-sonnet-4-5",
  "small_model": "anthropic/claude-haiku-4-5",
  "autoupdate": false,
  "share": "disabled",
  "permission": "allow",
  "provider": {
    "anthropic": {
      "options": {"baseURL": "%s/v1", "apiKey": "{env:ANTHROPIC_API_KEY}"}
    }
  }
}
`, r.baseURL))
			// OpenCode installs @opencode-ai/plugin from the npm registry into
			// each config directory it can write to, unless node_modules exists
			// and package-lock.json already lists it.
			r.file(".config/opencode/node_modules/.keep", "")
			r.file(".config/opencode/package-lock.json", `{"lockfileVersion": 3, "packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}}`+"\n")
			r.env = append(r.env,
				"ANTHROPIC_API_KEY=sk-ant-fake-opencode-key",
				"OPENCODE_DISABLE_MODELS_FETCH=1",
				"OPENCODE_DISABLE_AUTOUPDATE=1",
			)
			r.args = []string{"run", prompt}
		},
	},
}

// TestRealCLIs runs each real agent CLI on the host, unattended, in a fresh
// working directory and HOME (as an unprivileged user when the test is
// root), against the fake over plain HTTP on 127.0.0.1, and checks that it
// exited 0, wrote the scripted file, sent the dummy key in the right header,
// printed the final text, and tried to reach no other host (the proxy
// variables point at the fake, which refuses and records).
//
//	scripts/agent-clis.sh && go test ./test/fakemodel -run TestRealCLIs -v
func TestRealCLIs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the real agent CLIs; skipped in -short mode")
	}
	for _, ac := range agentCases {
		t.Run(ac.name, func(t *testing.T) {
			name := ac.bin
			if name == "" {
				name = ac.name
			}
			bin := filepath.Join(cliDir(), "bin", name)
			if _, err := os.Stat(bin); err != nil {
				t.Skipf("%s is not installed (%v); run scripts/agent-clis.sh (AGENT_CLIS_DIR=%s)", name, err, cliDir())
			}
			runAgent(t, ac, bin)
		})
	}
}

func runAgent(t *testing.T, ac agentCase, bin string) {
	script := fakemodel.Script{
		FilePath:    "notes/hello.txt",
		FileContent: "hello from the fake " + ac.name + " model\nline 'two' with \"quotes\" and $HOME\n",
		FinalText:   "FAKEMODEL-DONE-" + strings.ToUpper(ac.name),
	}
	fake := fakemodel.New(script)
	srv := httptest.NewUnstartedServer(fake)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	// A fresh HOME and working directory, owned by the user the CLI runs
	// as: when the test is root, an unprivileged one, as in a sandbox.
	base, err := os.MkdirTemp("", "fakemodel-"+ac.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	r := &cliRun{t: t, home: filepath.Join(base, "home"), work: filepath.Join(base, "work"), baseURL: srv.URL, uid: -1}
	for _, d := range []string{r.home, r.work, filepath.Join(base, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		r.uid = 65534
	}
	proxy := srv.URL // the fake refuses and records every proxied request
	r.env = []string{
		"HOME=" + r.home,
		"PATH=" + os.Getenv("PATH"),
		"TMPDIR=" + filepath.Join(base, "tmp"),
		"LANG=C.UTF-8",
		"TERM=dumb",
		"NO_COLOR=1",
		"HTTPS_PROXY=" + proxy, "https_proxy=" + proxy,
		"HTTP_PROXY=" + proxy, "http_proxy=" + proxy,
		"ALL_PROXY=" + proxy,
		"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost",
		"NODE_USE_ENV_PROXY=1",
	}
	prompt := fmt.Sprintf("Create the file %s containing a greeting, then say you are done.", script.FilePath)
	ac.setup(r, prompt)
	if r.uid >= 0 {
		r.env = append(r.env, "USER=nobody", "LOGNAME=nobody")
		if err := chownAll(base, r.uid, r.uid); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, r.args...)
	cmd.Dir = r.work
	cmd.Env = r.env
	cmd.Stdin = nil
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if r.uid >= 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.uid)}
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	runErr := cmd.Run()
	// Whatever the CLI left running in its process group goes too.
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	t.Logf("%s %s: %v in %s", ac.name, strings.Join(r.args[:1], " "), runErr, time.Since(start).Round(time.Millisecond))

	failed := false
	fail := func(format string, args ...any) {
		failed = true
		t.Errorf(format, args...)
	}
	if ctx.Err() != nil {
		fail("timed out after %s", cliTimeout)
	} else if runErr != nil {
		fail("exit: %v", runErr)
	}
	got, err := os.ReadFile(filepath.Join(r.work, script.FilePath))
	switch {
	case err != nil:
		fail("scripted file: %v", err)
	case string(got) != script.FileContent:
		fail("scripted file has %q, want %q", got, script.FileContent)
	}
	if !strings.Contains(stdout.String(), script.FinalText) {
		fail("final text %q not on stdout", script.FinalText)
	}
	for _, e := range fake.Errors() {
		fail("fake: %s", e)
	}
	if fake.Count(fakemodel.KindToolCall) == 0 || fake.Count(fakemodel.KindFinal) == 0 {
		fail("fake answered %d tool-call and %d final requests, want at least one each",
			fake.Count(fakemodel.KindToolCall), fake.Count(fakemodel.KindFinal))
	}
	want := fakemodel.KeyUse{API: ac.api, Header: ac.header, Key: ac.key}
	keys := fake.KeyHeaders()
	if len(keys) != 1 || keys[0] != want {
		fail("keys seen %+v, want only %+v", keys, want)
	}
	if hosts := fake.Outbound(); len(hosts) > 0 {
		fail("tried to reach other hosts through the proxy: %v", hosts)
	}

	var reqs strings.Builder
	for _, q := range fake.Requests() {
		fmt.Fprintf(&reqs, "  %s %s?%s api=%s model=%s kind=%s tool=%s status=%d %s\n",
			q.Method, q.Path, q.Query, q.API, q.Model, q.Kind, q.Tool, q.Status, q.Error)
	}
	if failed || testing.Verbose() {
		t.Logf("requests:\n%s", reqs.String())
		t.Logf("stdout:\n%s", tail(stdout.String(), 4000))
		t.Logf("stderr:\n%s", tail(stderr.String(), 4000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func chownAll(root string, uid, gid int) error {
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
