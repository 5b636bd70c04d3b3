package integration

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// TestDaemonKill9 kills the daemon with SIGKILL and expects the next CLI
// command to start a new one that re-adopts the running sandbox. It uses a
// home of its own, so a failure cannot break the shared daemon.
func TestDaemonKill9(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	if socketAnswers(e.socket()) {
		t.Fatal("a daemon answers in a fresh home")
	}
	e.ok(t, "sandbox", "create", "it-k9")
	pid1, err := e.daemonPID()
	if err != nil || !alive(pid1) {
		t.Fatalf("the first command did not start a daemon: pid %d, %v", pid1, err)
	}
	e.ok(t, "exec", "it-k9", "--", "sh", "-c", "echo survives > /root/k9.txt")
	id := strings.TrimSpace(e.ok(t, "exec", "-d", "it-k9", "--", "sleep", "300").stdout)
	before := e.info(t, "it-k9")
	// A streaming exec in flight when the daemon dies is told so.
	streamCmd := e.command(context.Background(), "exec", "it-k9", "--", "sh", "-c", "echo started; sleep 60")
	var streamOut, streamErr bytes.Buffer
	streamCmd.Stdout, streamCmd.Stderr = &streamOut, &streamErr
	if err := streamCmd.Start(); err != nil {
		t.Fatal(err)
	}
	streamDone := make(chan error, 1)
	go func() { streamDone <- streamCmd.Wait() }()
	if !waitFor(15*time.Second, func() bool { return strings.Contains(streamOut.String(), "started") }) {
		t.Fatalf("the streaming exec did not start: %q %q", streamOut.String(), streamErr.String())
	}

	if err := syscall.Kill(pid1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-streamDone:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 125 || !strings.Contains(streamErr.String(), "connection to the daemon was lost") {
			t.Errorf("a streaming exec cut by the daemon's death: %v, stderr %q", err, streamErr.String())
		}
	case <-time.After(30 * time.Second):
		streamCmd.Process.Kill()
		t.Errorf("the streaming exec did not end after the daemon died")
	}
	if !waitFor(10*time.Second, func() bool { return !alive(pid1) }) {
		t.Fatalf("daemon %d survived SIGKILL", pid1)
	}

	after := e.info(t, "it-k9") // starts a new daemon
	pid2, err := e.daemonPID()
	if err != nil || pid2 == pid1 || !alive(pid2) {
		t.Errorf("no new daemon after the old one was killed: pid %d (old %d), %v", pid2, pid1, err)
	}
	if after.Status != api.StatusRunning || after.UUID != before.UUID {
		t.Errorf("after the daemon restart: %+v, want the same sandbox running", after)
	}
	r := e.ak(t, "exec", "it-k9", "--", "cat", "/root/k9.txt")
	if r.code != 0 || r.stdout != "survives\n" {
		t.Errorf("exec after the daemon restart: %v", r)
	}
	d, ok := findDetached(t, e, "it-k9", id)
	if !ok || d.Status != api.DetachedRunning {
		t.Errorf("the detached sleep after the daemon restart: %+v (found %v)", d, ok)
	}
	e.ok(t, "sandbox", "remove", "it-k9")
}

// TestSandboxCrash kills a sandbox's supervisor, or the container's init,
// and expects the sandbox to be reported failed, with a reason, and its
// container to be gone.
func TestSandboxCrash(t *testing.T) {
	requireEnv(t)
	for _, victim := range []string{"supervisor", "init"} {
		t.Run(victim, func(t *testing.T) {
			e := shared
			name := "it-crash-" + victim
			info := e.create(t, name)
			dir := e.sandboxDir(info.UUID)
			pidFile := map[string]string{"supervisor": "supervisor.pid", "init": "init.pid"}[victim]
			pid, err := readPID(filepath.Join(dir, pidFile))
			if err != nil || !alive(pid) {
				t.Fatalf("%s pid: %d, %v", victim, pid, err)
			}
			if !slices.Contains(e.runcContainers(), info.UUID) {
				t.Fatalf("runc does not list %s before the crash: %v", info.UUID, e.runcContainers())
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			var got api.SandboxInfo
			if !waitFor(10*time.Second, func() bool {
				got = e.info(t, name)
				return got.Status == api.StatusFailed
			}) {
				t.Fatalf("10s after killing the %s: %+v, want status failed", victim, got)
			}
			if got.Error == "" {
				t.Errorf("failed without a reason: %+v", got)
			}
			t.Logf("after killing the %s: %s: %s", victim, got.Status, got.Error)
			if !waitFor(10*time.Second, func() bool { return !slices.Contains(e.runcContainers(), info.UUID) }) {
				t.Errorf("runc container %s is left after the crash", info.UUID)
			}
			r := e.ak(t, "exec", name, "--", "true")
			if r.code != 125 || r.stderr == "" {
				t.Errorf("exec in a failed sandbox: %v", r)
			}
			e.ok(t, "sandbox", "remove", name)
		})
	}
}

func TestTTL(t *testing.T) {
	requireEnv(t)
	e := shared
	e.ok(t, "sandbox", "create", "it-ttl", "--ttl", "2s")
	created := time.Now()
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", "it-ttl") })
	info := e.info(t, "it-ttl")
	if info.ExpiresAt == nil {
		t.Errorf("no expiry: %+v", info)
	}
	gone := func() bool {
		for _, sb := range e.list(t) {
			if sb.Name == "it-ttl" {
				return false
			}
		}
		return true
	}
	if !waitFor(8*time.Second, gone) {
		t.Fatalf("it-ttl (--ttl 2s) still listed %v after creation", time.Since(created))
	}
	if took := time.Since(created); took > 4500*time.Millisecond {
		t.Errorf("it-ttl (--ttl 2s) took %v to go, want about 2-4s", took)
	}
	// Removal answers first and tears the container down in the
	// background; that must not take long either.
	if !waitFor(5*time.Second, func() bool { return !slices.Contains(e.runcContainers(), info.UUID) }) {
		t.Errorf("runc container of the expired sandbox is left 5s after it left the list")
	}
}
