// Package agenttest is the conformance suite of the guest agent: the same
// tests run against an in-process agent.Server and against the real
// agentkernel-agent binary, through the host-side client in
// internal/agentproto. A backend can run it against the agent in a sandbox.
package agenttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
)

// Env is what the suite needs from a harness.
type Env struct {
	// Client returns a connected client; the suite closes it.
	Client func(t *testing.T) *agentproto.Client
	// Dir is a scratch directory, as a path inside the sandbox, that the
	// suite may fill.
	Dir string
	// HostPID, when not 0, is the agent's pid as the test process sees it,
	// used to check the agent's memory use.
	HostPID int
	// Secret is the value of AGENTKERNEL_TEST_SECRET in the agent's
	// environment, which must not reach processes; "" skips that check.
	Secret string
}

// Run runs every test of the suite.
func Run(t *testing.T, env Env) {
	t.Run("Hello", func(t *testing.T) { testHello(t, env) })
	t.Run("ExecOutput", func(t *testing.T) { testExecOutput(t, env) })
	t.Run("ExecStdin", func(t *testing.T) { testExecStdin(t, env) })
	t.Run("ExecFailures", func(t *testing.T) { testExecFailures(t, env) })
	t.Run("ExecEnv", func(t *testing.T) { testExecEnv(t, env) })
	t.Run("ExecUser", func(t *testing.T) { testExecUser(t, env) })
	t.Run("Timeout", func(t *testing.T) { testTimeout(t, env) })
	t.Run("Signals", func(t *testing.T) { testSignals(t, env) })
	t.Run("SignalWithBlockedStdin", func(t *testing.T) { testSignalBlockedStdin(t, env) })
	t.Run("CloseKills", func(t *testing.T) { testCloseKills(t, env) })
	t.Run("PTY", func(t *testing.T) { testPTY(t, env) })
	t.Run("ManyConcurrent", func(t *testing.T) { testConcurrent(t, env) })
	t.Run("SlowReader10MiB", func(t *testing.T) { testSlowReader(t, env) })
	t.Run("Background", func(t *testing.T) { testBackground(t, env) })
	t.Run("Files", func(t *testing.T) { testFiles(t, env) })
	t.Run("TarRoundTrip", func(t *testing.T) { testTarRoundTrip(t, env) })
	t.Run("HostileTar", func(t *testing.T) { testHostileTar(t, env) })
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Result is what Exec collected from a process.
type Result struct {
	Stdout, Stderr string
	Status         agentproto.ExitStatus
}

// Run execs req, feeds it stdin (if not nil), and collects its output.
func RunProcess(t *testing.T, c *agentproto.Client, req agentproto.ExecRequest, stdin string) Result {
	t.Helper()
	if stdin != "" {
		req.Stdin = true
	}
	p, err := c.Exec(ctxT(t), req)
	if err != nil {
		t.Fatalf("Exec %q: %v", req.Argv, err)
	}
	defer p.Close()
	if req.Stdin {
		go func() {
			io.WriteString(p.Stdin(), stdin)
			p.Stdin().Close()
		}()
	}
	var out, errb bytes.Buffer
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(&out, p.Stdout()) })
	wg.Go(func() { io.Copy(&errb, p.Stderr()) })
	st, err := p.Wait()
	wg.Wait()
	if err != nil {
		t.Fatalf("Wait %q: %v", req.Argv, err)
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Status: st}
}

func sh(script string) agentproto.ExecRequest {
	return agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c", script}}
}

func testHello(t *testing.T, env Env) {
	c := env.Client(t)
	if info := c.Info(); info.Version != agentproto.Version || info.AgentVersion == "" || info.PID <= 0 {
		t.Errorf("hello %+v", info)
	}
	if err := c.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func testExecOutput(t *testing.T, env Env) {
	c := env.Client(t)
	r := RunProcess(t, c, sh("echo out; echo err >&2; echo more; exit 3"), "")
	if r.Stdout != "out\nmore\n" || r.Stderr != "err\n" || r.Status.Code != 3 || r.Status.Signal != 0 {
		t.Errorf("got %+v", r)
	}
	req := sh("pwd")
	req.Workdir = env.Dir
	if r := RunProcess(t, c, req, ""); r.Stdout != env.Dir+"\n" || r.Status.Code != 0 {
		t.Errorf("workdir: %+v", r)
	}
	if r := RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"true"}}, ""); r.Status != (agentproto.ExitStatus{}) {
		t.Errorf("true: %+v", r)
	}
	// SIGPIPE has its default action in processes (an ignored one would
	// make yes complain about a broken pipe).
	if r := RunProcess(t, c, sh("yes | head -n 1"), ""); r.Stdout != "y\n" || r.Stderr != "" {
		t.Errorf("yes | head: %+v", r)
	}
}

func testExecStdin(t *testing.T, env Env) {
	c := env.Client(t)
	data := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB, several frames
	r := RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"cat"}}, data)
	if r.Stdout != data || r.Status.Code != 0 {
		t.Errorf("cat returned %d bytes, status %+v", len(r.Stdout), r.Status)
	}
	// Without Stdin the process reads /dev/null, and Stdin() refuses writes.
	p, err := c.Exec(ctxT(t), agentproto.ExecRequest{Argv: []string{"cat"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Stdin().Write([]byte("x")); err == nil {
		t.Errorf("write to disabled stdin succeeded")
	}
	out, _ := io.ReadAll(p.Stdout())
	io.ReadAll(p.Stderr())
	if st, err := p.Wait(); err != nil || st.Code != 0 || len(out) != 0 {
		t.Errorf("cat </dev/null: %q %+v %v", out, st, err)
	}
}

func testExecFailures(t *testing.T, env Env) {
	c := env.Client(t)
	r := RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"no-such-binary-xyz"}}, "")
	want := `exec: "no-such-binary-xyz": executable file not found in $PATH`
	if r.Status.Code != 127 || r.Status.Error != want || !strings.Contains(r.Stderr, want) {
		t.Errorf("missing binary: %+v", r)
	}
	if r := RunProcess(t, c, agentproto.ExecRequest{Argv: []string{env.Dir + "/nope"}}, ""); r.Status.Code != 127 {
		t.Errorf("missing path: %+v", r)
	}
	mustWrite(t, c, env.Dir+"/noexec.sh", 0o644, "#!/bin/sh\necho hi\n")
	if r := RunProcess(t, c, agentproto.ExecRequest{Argv: []string{env.Dir + "/noexec.sh"}}, ""); r.Status.Code != 126 || r.Status.Error == "" {
		t.Errorf("not executable: %+v", r)
	}
	if r := RunProcess(t, c, agentproto.ExecRequest{Argv: []string{env.Dir}}, ""); r.Status.Code != 126 {
		t.Errorf("directory: %+v", r)
	}
	req := agentproto.ExecRequest{Argv: []string{"true"}, Workdir: env.Dir + "/no/such/dir"}
	if r := RunProcess(t, c, req, ""); r.Status.Code != 126 || !strings.Contains(r.Status.Error, "workdir") {
		t.Errorf("bad workdir: %+v", r)
	}
	// Refused requests are errors, not exit statuses.
	for _, req := range []agentproto.ExecRequest{
		{}, {Argv: []string{"true"}, Workdir: "relative"}, {Argv: []string{"true"}, Env: []string{"NOEQUALS"}},
	} {
		if _, err := c.Exec(ctxT(t), req); err == nil {
			t.Errorf("Exec(%+v) succeeded", req)
		}
	}
	if _, err := c.Exec(ctxT(t), agentproto.ExecRequest{Argv: []string{"true"}, User: "no-such-user-xyz"}); err == nil {
		t.Errorf("unknown user accepted")
	}
}

func testExecEnv(t *testing.T, env Env) {
	c := env.Client(t)
	req := agentproto.ExecRequest{Argv: []string{"env"}, Env: []string{"FOO=bar", "PATH=/custom:/usr/bin:/bin"}}
	r := RunProcess(t, c, req, "")
	lines := strings.Split(r.Stdout, "\n")
	has := func(kv string) bool {
		for _, l := range lines {
			if l == kv {
				return true
			}
		}
		return false
	}
	if !has("FOO=bar") || !has("PATH=/custom:/usr/bin:/bin") {
		t.Errorf("env lacks request variables:\n%s", r.Stdout)
	}
	if strings.Contains(r.Stdout, "AGENTKERNEL_") || (env.Secret != "" && strings.Contains(r.Stdout, env.Secret)) {
		t.Errorf("AGENTKERNEL_ variable leaked:\n%s", r.Stdout)
	}
	if has("TERM=xterm-256color") {
		t.Errorf("TERM set without a TTY")
	}
}

func testExecUser(t *testing.T, env Env) {
	c := env.Client(t)
	if c.Info().UID != 0 {
		t.Skip("the agent is not root")
	}
	r := RunProcess(t, c, sh(`echo "$(id -u) $(id -g) $HOME"`), "")
	if r.Stdout != "0 0 /root\n" {
		t.Errorf("default user: %q", r.Stdout)
	}
	req := sh(`echo "$(id -u) $(id -g) $HOME"`)
	req.User = "nobody"
	if r := RunProcess(t, c, req, ""); r.Stdout != "65534 65534 /nonexistent\n" {
		t.Errorf("nobody: %+v", r)
	}
	req.User = "1234:5678"
	if r := RunProcess(t, c, req, ""); !strings.HasPrefix(r.Stdout, "1234 5678 ") {
		t.Errorf("1234:5678: %+v", r)
	}
}

func testTimeout(t *testing.T, env Env) {
	c := env.Client(t)
	start := time.Now()
	req := sh("echo before; sleep 30")
	req.Timeout = 300 * time.Millisecond
	r := RunProcess(t, c, req, "")
	if r.Status.Code != 124 || !r.Status.TimedOut || r.Stdout != "before\n" {
		t.Errorf("timeout: %+v", r)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timeout took %v", d)
	}
}

func testSignals(t *testing.T, env Env) {
	c := env.Client(t)
	p, err := c.Exec(ctxT(t), sh(`trap 'echo got-usr1; exit 7' USR1; echo ready; while :; do sleep 0.05; done`))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	go io.Copy(io.Discard, p.Stderr())
	waitFor(t, p.Stdout(), "ready\n")
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(p.Stdout())
	st, err := p.Wait()
	if err != nil || st.Code != 7 || !strings.Contains(string(rest), "got-usr1") {
		t.Errorf("trap: %q %+v %v", rest, st, err)
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t.Errorf("Signal after exit succeeded")
	}

	p, err = c.Exec(ctxT(t), agentproto.ExecRequest{Argv: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	go io.Copy(io.Discard, p.Stdout())
	go io.Copy(io.Discard, p.Stderr())
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(); err != nil || st.Code != 143 || st.Signal != 15 {
		t.Errorf("SIGTERM: %+v %v", st, err)
	}
}

// testSignalBlockedStdin: a process that never reads stdin must still be
// signallable while the host's stdin writes are stuck on flow control.
func testSignalBlockedStdin(t *testing.T, env Env) {
	c := env.Client(t)
	p, err := c.Exec(ctxT(t), agentproto.ExecRequest{Argv: []string{"sleep", "30"}, Stdin: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	go io.Copy(io.Discard, p.Stdout())
	go io.Copy(io.Discard, p.Stderr())
	go p.Stdin().Write(make([]byte, 8<<20)) // blocks: nobody reads it
	time.Sleep(200 * time.Millisecond)
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Wait(); err != nil || st.Code != 137 {
		t.Errorf("SIGKILL: %+v %v", st, err)
	}
}

func testCloseKills(t *testing.T, env Env) {
	c := env.Client(t)
	p, err := c.Exec(ctxT(t), agentproto.ExecRequest{Argv: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.PID()
	p.Close()
	p.Close()
	checkGone(t, c, pid)
}

// checkGone waits until pid no longer runs in the sandbox.
func checkGone(t *testing.T, c *agentproto.Client, pid int) {
	t.Helper()
	for i := 0; ; i++ {
		// A zombie passes kill -0 too: gone means killed and reaped.
		r := RunProcess(t, c, sh(fmt.Sprintf("kill -0 %d 2>/dev/null; echo $?", pid)), "")
		if r.Stdout == "1\n" {
			return
		}
		if i == 100 {
			t.Fatalf("process %d still exists", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testConcurrent(t *testing.T, env Env) {
	c := env.Client(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			want := fmt.Sprintf("n=%d\n", i)
			r := RunProcess(t, c, sh(fmt.Sprintf("echo n=%d", i)), "")
			if r.Stdout != want {
				t.Errorf("exec %d: %+v", i, r)
			}
		})
	}
	wg.Wait()
}

func waitFor(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 4096)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(string(got), want) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %q, got %q", want, got)
		}
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("waiting for %q: %v (got %q)", want, err, got)
		}
	}
	return string(got)
}

func isErr(err, class error) bool { return err != nil && errors.Is(err, class) }
