package cli

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestRunStreamsAndRemoves(t *testing.T) {
	svc, sock := startDaemon(t)
	out, errOut, code := cli(t, nil, "--socket", sock, "run", "--image", "base", "-e", "GREETING=hi", "--memory-mb", "256",
		"--", "sh", "-c", `echo "$GREETING out"; echo err >&2; exit 3`)
	if code != 3 || out != "hi out\n" || errOut != "err\n" {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if len(svc.createdReqs()) != 1 || !svc.createdReqs()[0].Ephemeral || svc.createdReqs()[0].Image != "base" || svc.createdReqs()[0].MemoryMB != 256 ||
		!strings.HasPrefix(svc.createdReqs()[0].Name, "run-") {
		t.Fatalf("created %+v", svc.createdReqs())
	}
	if len(svc.removedNames()) != 1 || svc.removedNames()[0] != svc.createdReqs()[0].Name {
		t.Fatalf("removed %v", svc.removedNames())
	}
	if len(svc.execOpts()) != 1 || svc.execOpts()[0].Env[0] != "GREETING=hi" {
		t.Fatalf("execs %+v", svc.execOpts())
	}
}

func TestRunStdin(t *testing.T) {
	_, sock := startDaemon(t)
	out, _, code := cli(t, strings.NewReader("line one\nline two\n"), "--socket", sock, "run", "--", "wc", "-l")
	if code != 0 || strings.TrimSpace(out) != "2" {
		t.Fatalf("code %d, stdout %q", code, out)
	}
	// Flags after the command belong to it.
	out, _, code = cli(t, nil, "--socket", sock, "run", "echo", "--keep", "-e")
	if code != 0 || out != "--keep -e\n" {
		t.Fatalf("code %d, stdout %q", code, out)
	}
	// -i=false never forwards.
	out, _, code = cli(t, strings.NewReader("data"), "--socket", sock, "run", "--interactive=false", "--", "cat")
	if code != 0 || out != "" {
		t.Fatalf("-i=false: code %d, stdout %q", code, out)
	}
}

func TestRunKeep(t *testing.T) {
	svc, sock := startDaemon(t)
	_, errOut, code := cli(t, nil, "--socket", sock, "run", "--keep", "--name", "kept", "--", "true")
	if code != 0 || !strings.Contains(errOut, "kept sandbox kept") {
		t.Fatalf("code %d, stderr %q", code, errOut)
	}
	if !svc.has("kept") || len(svc.removedNames()) != 0 || svc.createdReqs()[0].Ephemeral {
		t.Fatalf("kept sandbox: removed %v, created %+v", svc.removedNames(), svc.createdReqs())
	}
}

func TestRunFailures(t *testing.T) {
	svc, sock := startDaemon(t)

	// The daemon refuses the sandbox: 125, the daemon's message.
	svc.setCreateErr(errors.New("no such image")) // unclassified → 500
	_, errOut, code := cli(t, nil, "--socket", sock, "run", "--", "true")
	if code != 125 || !strings.Contains(errOut, "agentkernel: creating the sandbox") || !strings.Contains(errOut, "no such image") {
		t.Fatalf("create refused: code %d, stderr %q", code, errOut)
	}
	svc.setCreateErr(nil)

	// A name that is taken is someone else's sandbox: not removed.
	svc.add("taken")
	_, errOut, code = cli(t, nil, "--socket", sock, "run", "--name", "taken", "--", "true")
	if code != 125 || !strings.Contains(errOut, "already exists") || !svc.has("taken") {
		t.Fatalf("taken name: code %d, stderr %q, still there %v", code, errOut, svc.has("taken"))
	}

	// The command cannot start: 125, and the sandbox is still removed.
	before := len(svc.removedNames())
	_, errOut, code = cli(t, nil, "--socket", sock, "run", "--", "/nonexistent/cmd")
	if code != 125 || len(svc.removedNames()) != before+1 {
		t.Fatalf("bad command: code %d, stderr %q, removed %v", code, errOut, svc.removedNames())
	}

	// No daemon.
	_, errOut, code = cli(t, nil, "--socket", sock+".missing", "run", "--", "true")
	if code != 125 || !strings.HasPrefix(errOut, "agentkernel: ") {
		t.Fatalf("no daemon: code %d, stderr %q", code, errOut)
	}

	// Malformed flags fail fast with 125, before any request.
	n := len(svc.createdReqs())
	for _, args := range [][]string{
		{"run", "--memory-mb", "lots", "--", "true"},
		{"run", "-e", "NOEQUALS", "--", "true"},
		{"run", "--timeout", "soon", "--", "true"},
		{"run", "--nosuchflag", "--", "true"},
		{"run"},
	} {
		_, errOut, code := cli(t, nil, append([]string{"--socket", sock}, args...)...)
		if code != 125 || !strings.HasPrefix(errOut, "agentkernel: ") {
			t.Errorf("%v: code %d, stderr %q", args, code, errOut)
		}
	}
	if len(svc.createdReqs()) != n {
		t.Fatalf("malformed flags reached the daemon")
	}
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunInterrupt sends the test process SIGINT while run streams (run's
// relay catches it): the first is forwarded to the command, which exits;
// run removes the sandbox and exits 130.
func TestRunInterrupt(t *testing.T) {
	svc, sock := startDaemon(t)
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cliTo(t, nil, &out, &errb, "--socket", sock, "run", "--",
			"sh", "-c", `trap 'echo got INT; exit 7' INT; echo ready; while :; do sleep 0.05; done`)
	}()
	waitFor(t, "the command to start", func() bool { return strings.Contains(out.String(), "ready") })
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	var code int
	select {
	case code = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("run did not end after Ctrl-C")
	}
	if code != 130 || !strings.Contains(out.String(), "got INT") {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	if len(svc.removedNames()) != 1 {
		t.Fatalf("sandbox not removed: %v", svc.removedNames())
	}
}

// TestRunInterruptTwice: a command that ignores SIGINT; the second Ctrl-C
// abandons it and run still removes the sandbox.
func TestRunInterruptTwice(t *testing.T) {
	svc, sock := startDaemon(t)
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cliTo(t, nil, &out, &errb, "--socket", sock, "run", "--",
			"sh", "-c", `trap '' INT; echo ready; while :; do sleep 0.05; done`)
	}()
	waitFor(t, "the command to start", func() bool { return strings.Contains(out.String(), "ready") })
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case code := <-done:
		t.Fatalf("run ended after one Ctrl-C of a command that ignores it: %d", code)
	case <-time.After(300 * time.Millisecond):
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case code := <-done:
		if code != 130 {
			t.Fatalf("code %d, stderr %q", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second Ctrl-C did not end run")
	}
	if len(svc.removedNames()) != 1 {
		t.Fatalf("sandbox not removed: %v", svc.removedNames())
	}
}

func TestExec(t *testing.T) {
	svc, sock := startDaemon(t)
	svc.add("dev")
	out, errOut, code := cli(t, strings.NewReader("abc"), "--socket", sock, "exec", "-e", "X=1", "-w", "/w", "dev", "--", "sh", "-c", `cat; echo " $X"; exit 4`)
	if code != 4 || out != "abc 1\n" || errOut != "" {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if e := svc.execOpts()[len(svc.execOpts())-1]; e.Workdir != "/w" || e.Env[0] != "X=1" || e.Argv[0] != "sh" {
		t.Fatalf("exec options %+v", e)
	}
	// Without --.
	out, _, code = cli(t, nil, "--socket", sock, "exec", "dev", "echo", "hi")
	if code != 0 || out != "hi\n" {
		t.Fatalf("without --: code %d, stdout %q", code, out)
	}
	// Everything after NAME is the command's, flags included (upstream's
	// and docker's rule): exec dev ls -d /tmp runs ls -d /tmp in the
	// foreground, not ls /tmp detached.
	cli(t, nil, "--socket", sock, "exec", "dev", "ls", "-d", "/tmp")
	if e := svc.execOpts()[len(svc.execOpts())-1]; strings.Join(e.Argv, " ") != "ls -d /tmp" {
		t.Fatalf("flags after NAME: exec options %+v", e)
	}
	// A missing sandbox.
	_, errOut, code = cli(t, nil, "--socket", sock, "exec", "nope", "--", "true")
	if code != 125 || !strings.Contains(errOut, "nope") {
		t.Fatalf("missing sandbox: code %d, stderr %q", code, errOut)
	}
	// Detached.
	out, _, code = cli(t, nil, "--socket", sock, "exec", "-d", "dev", "--", "sleep", "9")
	if code != 0 || out != "bg-1\n" {
		t.Fatalf("detached: code %d, stdout %q", code, out)
	}
	for _, args := range [][]string{{"exec", "dev"}, {"exec", "--", "true"}, {"exec", "-d", "-t", "dev", "--", "true"}} {
		_, errOut, code := cli(t, nil, append([]string{"--socket", sock}, args...)...)
		if code != 125 {
			t.Errorf("%v: code %d, stderr %q", args, code, errOut)
		}
	}
}

// TestOutputFails: when nobody reads the output any more the command is
// stopped (and run's sandbox removed) instead of running on.
func TestOutputFails(t *testing.T) {
	svc, sock := startDaemon(t)
	svc.add("dev")
	for _, tc := range []struct {
		err  error
		want int
	}{{syscall.EPIPE, 141}, {errdefs.ErrUnavailable, 125}} {
		for _, cmd := range []string{"exec", "run"} {
			args := []string{"--socket", sock, "exec", "dev", "--", "yes"}
			if cmd == "run" {
				args = []string{"--socket", sock, "run", "--", "yes"}
			}
			done := make(chan int, 1)
			go func() { done <- cliTo(t, nil, failingWriter{tc.err}, &syncBuffer{}, args...) }()
			select {
			case code := <-done:
				if code != tc.want {
					t.Fatalf("%s, %v: code %d, want %d", cmd, tc.err, code, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s kept running after its stdout failed", cmd)
			}
		}
	}
	if len(svc.removedNames()) != 2 {
		t.Fatalf("run's sandboxes not removed: %v", svc.removedNames())
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write(p []byte) (int, error) { return 0, w.err }
