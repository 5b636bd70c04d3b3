package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TestMemoryPressureSparesAgent: the sandbox's own memory pressure must not
// kill its guest agent (the finding: writing 2 GiB to /tmp, or a memory hog
// in a small sandbox, killed the agent, failed the sandbox and lost /tmp).
// The agent runs with a low oom_score_adj set from outside, the processes it
// starts get the default again, and /tmp is on disk, not in the memory the
// limit counts.
func TestMemoryPressureSparesAgent(t *testing.T) {
	requireEnv(t)
	e := shared
	e.create(t, "it-oom", "--memory-mb", "128")
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", "it-oom") })

	// The agent boosts the process it started (sh, $$) just after the exec:
	// read sh's own value, not that of a child it forks at once (which may
	// inherit the agent's before the boost lands; seen under load in CI).
	r := e.ok(t, "exec", "it-oom", "--", "sh", "-c",
		`for i in $(seq 50); do [ "$(cat /proc/$$/oom_score_adj)" != "$(cat /proc/1/oom_score_adj)" ] && break; sleep 0.1; done; cat /proc/1/oom_score_adj /proc/$$/oom_score_adj`)
	f := strings.Fields(r.stdout)
	if len(f) != 2 {
		t.Fatalf("oom_score_adj: %q", r.stdout)
	}
	agentAdj, _ := strconv.Atoi(f[0])
	childAdj, _ := strconv.Atoi(f[1])
	// -999 where the host may lower it (CAP_SYS_RESOURCE), else the host's.
	if agentAdj > 0 || childAdj != min(agentAdj+500, 1000) {
		t.Fatalf("oom_score_adj of the agent %d and of an exec'd process %d; want the process 500 above", agentAdj, childAdj)
	}
	// No sandbox process may go below the agent, nor make itself unkillable.
	r = e.ak(t, "exec", "it-oom", "--", "sh", "-c", fmt.Sprintf("echo %d > /proc/self/oom_score_adj", agentAdj-1))
	if r.code == 0 {
		t.Errorf("a sandbox process set its oom_score_adj below the agent's")
	}
	// 3x the memory limit written to /tmp: on disk, so nothing is killed.
	r = e.ak(t, "exec", "it-oom", "--", "sh", "-c", "dd if=/dev/zero of=/tmp/big bs=1M count=384 2>/dev/null && ls -l /tmp/big | awk '{print $5}'")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "402653184" {
		t.Fatalf("writing 384 MiB to /tmp in a 128 MiB sandbox: %v", r)
	}
	// A memory hog past the limit is killed; the agent is not.
	r = e.ak(t, "exec", "it-oom", "--", "python3", "-c", "b = []\nwhile True: b.append(bytearray(16 << 20))")
	if r.code != 137 || !strings.Contains(r.stderr, "out-of-memory killer") {
		t.Errorf("memory hog: exit %d, want 137 (killed) with a message naming the OOM killer; %v", r.code, r)
	}
	if info := e.info(t, "it-oom"); info.Status != api.StatusRunning {
		t.Fatalf("after the hog the sandbox is %s (%s)", info.Status, info.Error)
	}
	r = e.ok(t, "exec", "it-oom", "--", "sh", "-c", "ls -l /tmp/big | awk '{print $5}'")
	if strings.TrimSpace(r.stdout) != "402653184" {
		t.Errorf("/tmp after the hog: %q", r.stdout)
	}
	// /tmp is fresh at each start.
	e.ok(t, "sandbox", "stop", "it-oom")
	e.ok(t, "sandbox", "start", "it-oom")
	if r := e.ok(t, "exec", "it-oom", "--", "ls", "-A", "/tmp"); r.stdout != "" {
		t.Errorf("/tmp after a restart: %q", r.stdout)
	}
}

// TestForkBombSparesAgent: a fork bomb hits the sandbox's pids limit; while
// it lasts execs may fail, and afterwards the agent still serves (the
// finding: its accept loop gave up and every later exec failed).
func TestForkBombSparesAgent(t *testing.T) {
	requireEnv(t)
	e := shared
	e.create(t, "it-bomb")
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", "it-bomb") })
	// Bounded: each process sleeps 3 s and exits, so the bomb ends alone.
	r := e.ak(t, "exec", "it-bomb", "--", "sh", "-c", "i=0; while [ $i -lt 3000 ]; do sleep 3 & i=$((i+1)); done 2>/dev/null; wait; echo done")
	if r.code == 0 || !strings.Contains(r.stderr, "process limit") {
		t.Errorf("fork bomb: want a failure naming the process limit, got %v", r)
	}
	ok := waitFor(30*time.Second, func() bool {
		return e.ak(t, "exec", "it-bomb", "--", "echo", "alive").stdout == "alive\n"
	})
	if !ok {
		t.Fatalf("the sandbox does not exec after the fork bomb: %v", e.ak(t, "exec", "it-bomb", "--", "echo", "alive"))
	}
	if info := e.info(t, "it-bomb"); info.Status != api.StatusRunning {
		t.Fatalf("after the bomb the sandbox is %s (%s)", info.Status, info.Error)
	}
}

// TestConcurrentRemove: of several concurrent removes of one sandbox,
// exactly one is told "removed" and the others "not found" (the finding:
// all reported removed).
func TestConcurrentRemove(t *testing.T) {
	requireEnv(t)
	e := shared
	e.create(t, "it-rm-race")
	c := e.client(t)
	const n = 6
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			errs <- c.RemoveSandbox(context.Background(), "it-rm-race")
		}()
	}
	close(start)
	removed, notFound := 0, 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			removed++
		case errors.Is(err, errdefs.ErrNotFound):
			notFound++
		default:
			t.Errorf("remove: %v", err)
		}
	}
	if removed != 1 || notFound != n-1 {
		t.Errorf("%d removed, %d not found; want 1 and %d", removed, notFound, n-1)
	}
}

// TestConfigNetworkFalse: agentkernel.toml's [security] network = false
// was accepted and ignored (the sandbox kept the moderate egress policy);
// it now leaves the sandbox loopback only, and a flag asking for a
// network with it is refused.
func TestConfigNetworkFalse(t *testing.T) {
	requireEnv(t)
	e := shared
	cfg := filepath.Join(t.TempDir(), "agentkernel.toml")
	if err := os.WriteFile(cfg, []byte("[security]\nnetwork = false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.ok(t, "run", "--config", cfg, "--", "ls", "/sys/class/net")
	if strings.TrimSpace(r.stdout) != "lo" {
		t.Errorf("interfaces with network = false: %q, want lo only", r.stdout)
	}
	if r := e.ak(t, "run", "--config", cfg, "--allow", "example.com", "--", "true"); r.code == 0 || !strings.Contains(r.stderr, "no network") {
		t.Errorf("--allow with network = false: %v", r)
	}
}
