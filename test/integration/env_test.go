package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// cliTimeout bounds one CLI invocation.
const cliTimeout = 90 * time.Second

// env is one agentkernel home and the daemon that serves it. It remembers
// the UUID of every sandbox it saw, to look for their leftovers at the end.
type env struct {
	home string

	mu    sync.Mutex
	uuids map[string]bool
}

// newHome makes a fresh home directory, short enough for the Unix socket
// paths under it (108 bytes at most).
func newHome() (*env, error) {
	home, err := os.MkdirTemp("/tmp", "akit")
	if err != nil {
		return nil, err
	}
	return &env{home: home, uuids: map[string]bool{}}, nil
}

// newEnv gives t a home and daemon of its own, torn down (and its logs
// printed on failure) when t ends.
func newEnv(t *testing.T) *env {
	t.Helper()
	e, err := newHome()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var b bytes.Buffer
			e.dumpLogs(&b)
			t.Log(b.String())
		}
		for _, p := range e.teardown() {
			t.Errorf("leftover in %s: %s", e.home, p)
		}
		e.removeHome()
	})
	return e
}

func (e *env) socket() string  { return filepath.Join(e.home, "run", "agentkernel.sock") }
func (e *env) pidFile() string { return filepath.Join(e.home, "run", "daemon.pid") }
func (e *env) runcRoot() string {
	return filepath.Join(e.home, "runc")
}

// environ is the CLI's environment: ours without AGENTKERNEL_* settings,
// plus this home.
func (e *env) environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AGENTKERNEL_") {
			out = append(out, kv)
		}
	}
	return append(out, "AGENTKERNEL_HOME="+e.home)
}

// command prepares bin/agentkernel with args against this home.
func (e *env) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, akBin, args...)
	cmd.Env = e.environ()
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// result is what one CLI invocation did.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("agentkernel %s: exit %d\nstdout: %q\nstderr: %q", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// ak runs the CLI with args and no stdin, and returns what it did. A CLI
// that cannot be run, or runs past cliTimeout, fails t.
func (e *env) ak(t testing.TB, args ...string) result {
	t.Helper()
	return e.akIn(t, nil, args...)
}

// akIn is ak with stdin.
func (e *env) akIn(t testing.TB, stdin io.Reader, args ...string) result {
	t.Helper()
	return e.akRun(t, stdin, nil, cliTimeout, args...)
}

// akEnv runs the CLI with extra environment variables (KEY=VALUE) and a
// longer time limit, for commands that run an agent.
func (e *env) akEnv(t testing.TB, env []string, args ...string) result {
	t.Helper()
	return e.akRun(t, nil, env, 5*time.Minute, args...)
}

func (e *env) akRun(t testing.TB, stdin io.Reader, env []string, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := e.command(ctx, args...)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("agentkernel %s: still running after %v\nstderr: %s", strings.Join(args, " "), timeout, errb.String())
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("agentkernel %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs the CLI and fails t unless it exits 0.
func (e *env) ok(t testing.TB, args ...string) result {
	t.Helper()
	r := e.ak(t, args...)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	return r
}

// info returns `sandbox info --json NAME` and remembers the UUID.
func (e *env) info(t testing.TB, name string) api.SandboxInfo {
	t.Helper()
	r := e.ok(t, "sandbox", "info", "--json", name)
	var info api.SandboxInfo
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("sandbox info --json %s: %v\n%s", name, err, r.stdout)
	}
	e.remember(info.UUID)
	return info
}

// list returns `sandbox list --json`.
func (e *env) list(t testing.TB) []api.SandboxInfo {
	t.Helper()
	r := e.ok(t, "sandbox", "list", "--json")
	var list []api.SandboxInfo
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("sandbox list --json: %v\n%s", err, r.stdout)
	}
	for _, sb := range list {
		e.remember(sb.UUID)
	}
	return list
}

// create makes a running sandbox called name and removes it when t ends.
func (e *env) create(t testing.TB, name string, flags ...string) api.SandboxInfo {
	t.Helper()
	e.ok(t, append([]string{"sandbox", "create", name}, flags...)...)
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", name) })
	return e.info(t, name)
}

func (e *env) remember(uuid string) {
	if uuid == "" {
		return
	}
	e.mu.Lock()
	e.uuids[uuid] = true
	e.mu.Unlock()
}

// sandboxDir is the state directory of the sandbox with this UUID: its
// hex digits without the dashes.
func (e *env) sandboxDir(uuid string) string {
	return filepath.Join(e.home, "sandboxes", strings.ReplaceAll(uuid, "-", ""))
}

// dashedUUID turns a state directory's name back into the UUID (the runc
// container id and the cgroup name); other names come back unchanged.
func dashedUUID(s string) string {
	if len(s) != 32 || strings.Contains(s, "-") {
		return s
	}
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// client returns a pkg/client connected to the daemon's Unix socket.
func (e *env) client(t testing.TB) *client.Client {
	t.Helper()
	c, err := clientFor(e.socket())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// httpClient speaks HTTP over the daemon's Unix socket, whatever the URL's
// host; it follows no redirect.
func (e *env) httpClient() *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", e.socket())
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// daemonPID reads the running daemon's pid.
func (e *env) daemonPID() (int, error) {
	b, err := os.ReadFile(e.pidFile())
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dumpLogs prints the daemon log and every sandbox's supervisor and
// console logs.
func (e *env) dumpLogs(w io.Writer) {
	show := func(p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			return
		}
		const max = 64 << 10
		if len(b) > max {
			b = append([]byte("…(truncated)…\n"), b[len(b)-max:]...)
		}
		fmt.Fprintf(w, "===== %s =====\n%s\n", p, b)
	}
	show(filepath.Join(e.home, "daemon.log"))
	dirs, _ := filepath.Glob(filepath.Join(e.home, "sandboxes", "*"))
	for _, d := range dirs {
		show(filepath.Join(d, "supervisor.log"))
		show(filepath.Join(d, "console.log"))
	}
}

// socketAnswers reports whether something accepts connections on path.
func socketAnswers(path string) bool {
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// clientFor returns a pkg/client for the daemon on the Unix socket path.
func clientFor(path string) (*client.Client, error) {
	return client.New(client.WithBaseURL("unix://" + path))
}
