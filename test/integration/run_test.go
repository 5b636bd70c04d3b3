package integration

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// noneLeft fails t if a sandbox whose name starts with prefix is listed.
func noneLeft(t *testing.T, e *env, prefix string) {
	t.Helper()
	for _, sb := range e.list(t) {
		if strings.HasPrefix(sb.Name, prefix) {
			t.Errorf("sandbox %s (%s) is left after run", sb.Name, sb.Status)
		}
	}
}

func TestRunStreamsAndExitCode(t *testing.T) {
	requireEnv(t)
	started := socketAnswers(shared.socket())
	r := shared.ak(t, "run", "--name", "it-run-basic", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
	if r.stdout != "out\n" || r.stderr != "err\n" || r.code != 7 {
		t.Errorf("want stdout \"out\\n\", stderr \"err\\n\", exit 7; got %v", r)
	}
	if !started {
		// This was the first CLI call: it must have started the daemon.
		pid, err := shared.daemonPID()
		if err != nil || !alive(pid) || !socketAnswers(shared.socket()) {
			t.Errorf("no daemon after the first CLI call (pid %d, %v)", pid, err)
		}
	}
	noneLeft(t, shared, "it-run-basic")
	// Without --name the sandbox is run-<random>; none may stay either.
	before := len(shared.list(t))
	shared.ok(t, "run", "--", "true")
	if n := len(shared.list(t)); n != before {
		t.Errorf("%d sandboxes after `run -- true`, %d before", n, before)
	}
}

func TestRunStdin(t *testing.T) {
	requireEnv(t)
	in := strings.Repeat("line of input\n", 5000) + "last"
	r := shared.akIn(t, strings.NewReader(in), "run", "--", "sh", "-c", "cat; echo; echo done >&2")
	if r.code != 0 || r.stdout != in+"\n" || r.stderr != "done\n" {
		t.Errorf("stdin not passed through: exit %d, %d bytes out (want %d), stderr %q", r.code, len(r.stdout), len(in)+1, r.stderr)
	}
	// -i=false never forwards stdin: cat sees EOF at once.
	r = shared.akIn(t, strings.NewReader("ignored"), "run", "--interactive=false", "--", "cat")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("-i=false: %v", r)
	}
}

func TestRunEnvAndWorkdir(t *testing.T) {
	requireEnv(t)
	r := shared.ak(t, "run", "-e", "FOO=bar baz", "-e", "EMPTY=", "-w", "/tmp", "--",
		"sh", "-c", `printf '%s|%s|%s\n' "$FOO" "${EMPTY-unset}" "$(pwd)"`)
	if r.code != 0 || r.stdout != "bar baz||/tmp\n" {
		t.Errorf("env/workdir: %v", r)
	}
	r = shared.ak(t, "run", "-e", "NOEQUALS", "--", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "KEY=VALUE") {
		t.Errorf("-e without '=': want exit 125 and a message, got %v", r)
	}
	r = shared.ak(t, "run", "-w", "/does/not/exist", "--", "true")
	if r.code == 0 || r.stderr == "" {
		t.Errorf("missing workdir: want a failure with a message, got %v", r)
	}
}

func TestRunMissingBinary(t *testing.T) {
	requireEnv(t)
	r := shared.ak(t, "run", "--name", "it-run-missing", "--", "definitely-not-a-command", "arg")
	if r.code != 127 || !strings.Contains(r.stderr, "definitely-not-a-command") {
		t.Errorf("want exit 127 and a message naming the command, got %v", r)
	}
	noneLeft(t, shared, "it-run-missing")
}

func TestRunTimeout(t *testing.T) {
	requireEnv(t)
	start := time.Now()
	r := shared.ak(t, "run", "--timeout", "1s", "--", "sh", "-c", "echo before; sleep 60")
	took := time.Since(start)
	if r.code != 124 || r.stdout != "before\n" || !strings.Contains(r.stderr, "timed out") {
		t.Errorf("want exit 124, output before the kill and a message; got %v", r)
	}
	if took > 20*time.Second {
		t.Errorf("run --timeout 1s took %v", took)
	}
	r = shared.ak(t, "run", "--timeout", "soon", "--", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "--timeout") {
		t.Errorf("bad --timeout: %v", r)
	}
}

// TestRunInterrupt sends SIGINT to `run -- sleep 60`, as a Ctrl-C would.
func TestRunInterrupt(t *testing.T) {
	requireEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := shared.command(ctx, "run", "--name", "it-run-int", "--", "sh", "-c", "echo ready; exec sleep 60")
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return strings.Contains(out.String(), "ready") }) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the command did not start; stderr %q", errb.String())
	}
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	took := time.Since(sent)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("after SIGINT: %v (want exit 130); stderr %q", err, errb.String())
	}
	if took > 10*time.Second {
		t.Errorf("run took %v to exit after SIGINT", took)
	}
	noneLeft(t, shared, "it-run-int")
}

// syncBuffer is a bytes.Buffer safe for one writer and a poller.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
