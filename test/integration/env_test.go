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
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// cliTimeout bounds one CLI invocation.
const cliTimeout = 90 * time.Second

// env is one agentkernel home and the daemon that serves it. It remembers
// the UUID of every sandbox it saw, to look for their leftovers at the end.
type env struct {
	home string
	h    *akhome.Home
}

// newHome makes a fresh home directory, short enough for the Unix socket
// paths under it (108 bytes at most).
func newHome() (*env, error) {
	h, err := akhome.New("akit")
	if err != nil {
		return nil, err
	}
	return &env{home: h.Dir, h: h}, nil
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

func (e *env) socket() string   { return e.h.Socket() }
func (e *env) pidFile() string  { return e.h.PIDFile() }
func (e *env) runcRoot() string { return e.h.RuncRoot() }

// environ is the CLI's environment: ours without AGENTKERNEL_* settings,
// plus this home.
func (e *env) environ() []string { return e.h.Environ() }

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

// sandboxDir is the state directory of the sandbox with this UUID: its
// hex digits without the dashes.
func (e *env) sandboxDir(uuid string) string { return e.h.SandboxDir(uuid) }

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
func (e *env) daemonPID() (int, error) { return e.h.DaemonPID() }

// dumpLogs prints the daemon log and every sandbox's supervisor and
// console logs.
func (e *env) dumpLogs(w io.Writer) { e.h.DumpLogs(w, 64<<10) }

// clientFor returns a pkg/client for the daemon on the Unix socket path.
func clientFor(path string) (*client.Client, error) {
	return client.New(client.WithBaseURL("unix://" + path))
}
