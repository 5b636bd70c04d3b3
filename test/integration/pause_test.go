package integration

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// Pause and resume on each backend that can: a process counting in a loop
// stops counting while paused and goes on from where it was, with the same
// PID, after resume; exec on a paused sandbox is refused with a message
// that says to resume; a paused sandbox can be stopped.

func TestPauseResume(t *testing.T) {
	requireEnv(t)
	shared.ok(t, "sandbox", "list")
	checkPauseResume(t, shared, "it-pause", "container")
}

func TestMicroVMPauseResume(t *testing.T) {
	e := newMicroVMEnv(t)
	e.ok(t, "sandbox", "list") // starts the daemon
	checkPauseResume(t, e, "vm-pause", "microvm")
}

func checkPauseResume(t *testing.T, e *env, name, backend string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := e.client(t)
	if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: name, Backend: backend}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", name) })
	bg, err := c.ExecDetached(ctx, name, api.ExecRequest{Command: []string{"sh", "-c",
		"i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; sleep 0.1; done"}})
	if err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		b, err := c.ReadFile(ctx, name, "/tmp/count")
		if err != nil {
			t.Fatalf("reading the counter: %v", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("counter %q: %v", b, err)
		}
		return n
	}
	if !waitFor(30*time.Second, func() bool { _, err := c.ReadFile(ctx, name, "/tmp/count"); return err == nil }) {
		t.Fatal("the counter never started")
	}
	// How far it counts in 2 s when it runs, for comparison.
	a := count()
	time.Sleep(2 * time.Second)
	running := count() - a
	if running < 5 {
		t.Fatalf("the counter went only %d in 2 s while running", running)
	}

	before := count()
	info, err := c.PauseSandbox(ctx, name)
	if err != nil || info.Status != api.StatusPaused {
		t.Fatalf("pause: %+v %v", info, err)
	}
	if _, err := c.Exec(ctx, name, api.ExecRequest{Command: []string{"true"}}); err == nil || !strings.Contains(err.Error(), "paused") || !strings.Contains(err.Error(), "resume") {
		t.Errorf("exec on a paused sandbox: %v, want an error saying it is paused and to resume", err)
	}
	if got := e.info(t, name).Status; got != api.StatusPaused {
		t.Errorf("sandbox info while paused: %s", got)
	}
	time.Sleep(2 * time.Second)
	if info, err := c.ResumeSandbox(ctx, name); err != nil || info.Status != api.StatusRunning {
		t.Fatalf("resume: %+v %v", info, err)
	}
	after := count()
	// Paused for 2 s, it counted at most what the pause and resume calls
	// themselves took, far less than the same 2 s running.
	if after-before >= running/2+2 {
		t.Errorf("the counter went from %d to %d across a 2 s pause (running, 2 s count %d)", before, after, running)
	}
	if !waitFor(10*time.Second, func() bool { return count() > after+2 }) {
		t.Errorf("the counter did not go on after resume (stuck at %d)", count())
	}
	if d, err := c.GetDetached(ctx, name, bg.ID); err != nil || d.Status != "running" || d.PID != bg.PID {
		t.Errorf("the counting process after resume: %+v %v, want running with pid %d", d, err, bg.PID)
	}

	// Pausing twice is fine; resume of a running sandbox says so plainly.
	if _, err := c.ResumeSandbox(ctx, name); err != nil {
		t.Errorf("resume of a running sandbox: %v", err)
	}
	// A paused sandbox stops (the supervisor thaws it first).
	if _, err := c.PauseSandbox(ctx, name); err != nil {
		t.Fatal(err)
	}
	if info, err := c.StopSandbox(ctx, name); err != nil || info.Status != api.StatusStopped {
		t.Errorf("stop of a paused sandbox: %+v %v", info, err)
	}
	if _, err := c.PauseSandbox(ctx, name); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("pause of a stopped sandbox: %v", err)
	}
}

// TestPausedTTL: by default a paused sandbox's TTL clock runs (it is
// reaped while paused); with [lifecycle] paused_ttl = "stops" it is not,
// and resume moves its expiry on by the time it was paused.
func TestPausedTTL(t *testing.T) {
	requireEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	gone := func(e *env, name string) bool {
		for _, sb := range e.list(t) {
			if sb.Name == name {
				return false
			}
		}
		return true
	}

	shared.ok(t, "sandbox", "list")
	c := shared.client(t)
	if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "it-pause-ttl", TTL: "3s"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.ak(t, "sandbox", "remove", "it-pause-ttl") })
	if _, err := c.PauseSandbox(ctx, "it-pause-ttl"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool { return gone(shared, "it-pause-ttl") }) {
		t.Errorf("by default a paused sandbox past its TTL is reaped; it is still there")
	}

	e := newEnv(t)
	if err := os.WriteFile(filepath.Join(e.home, "daemon.toml"), []byte("[lifecycle]\npaused_ttl = \"stops\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.ok(t, "sandbox", "list")
	c = e.client(t)
	if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "it-pause-ttl2", TTL: "4s"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PauseSandbox(ctx, "it-pause-ttl2"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(7 * time.Second)
	if gone(e, "it-pause-ttl2") {
		t.Fatal(`with paused_ttl = "stops" the paused sandbox was reaped`)
	}
	info, err := c.ResumeSandbox(ctx, "it-pause-ttl2")
	if err != nil {
		t.Fatal(err)
	}
	if info.ExpiresAt == nil || time.Until(*info.ExpiresAt) < 2*time.Second {
		t.Errorf("after resume the expiry is %v, want about 4 s from the pause moved on by the 7 s paused", info.ExpiresAt)
	}
	if !waitFor(20*time.Second, func() bool { return gone(e, "it-pause-ttl2") }) {
		t.Errorf("the resumed sandbox was not reaped at its moved expiry")
	}
}
