// Package fault is agentkernel's fault suite: it kills, with SIGKILL, each
// of the processes a sandbox depends on (the daemon, the sandbox's
// supervisor, the runtime's process: runc's container init, which is the
// guest agent, or QEMU) at several points of create, a streaming exec, cp,
// snapshot and remove; restarts the daemon mid-create; fills the home's
// disk; locks and corrupts the store's database. For each fault it checks
// what the user is told (an error naming the sandbox and what happened,
// never a bare "EOF"), that no sandbox is lost and none is left running
// unlisted, that after a daemon restart the list matches what runs, and
// that removal then leaves nothing behind (internal/testutil/akhome's leak
// check). See docs/RELIABILITY.md, "The fault suite".
//
// By default (go test ./...) it runs a short variant: every container
// fault once, and one microVM case. `make fault` (AGENTKERNEL_FAULT=1) runs
// the full matrix: every fault on every backend this host has (container,
// gvisor, microvm), AGENTKERNEL_FAULT_REPEAT times (default 3).
// AGENTKERNEL_FAULT_REPORT=FILE writes the table of results to FILE.
package fault

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/testutil"
)

var (
	skipReason string
	akBin      string
	imageDir   string // a static busybox tree, imported as image "fbox"
	full       = os.Getenv("AGENTKERNEL_FAULT") == "1"
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	flag.Parse()
	if skipReason = prerequisites(); skipReason != "" {
		fmt.Fprintf(os.Stderr, "fault: SKIPPING: %s\n", skipReason)
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "akflt-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if akBin, _, err = testutil.BuildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, "fault: building the binaries:", err)
		return 1
	}
	imageDir = filepath.Join(dir, "fbox")
	if err := makeBusybox(imageDir); err != nil {
		fmt.Fprintln(os.Stderr, "fault:", err)
		return 1
	}
	start := time.Now()
	code := m.Run()
	writeReport(time.Since(start))
	return code
}

func prerequisites() string {
	switch {
	case testing.Short():
		return "-short was given (the suite starts real sandboxes and kills real processes)"
	case runtime.GOOS != "linux":
		return "sandboxes need Linux"
	case os.Geteuid() != 0:
		return "it needs root (run `sudo make fault`)"
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "runc is not in PATH (scripts/setup.sh installs it)"
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		return "no static /bin/busybox (scripts/setup.sh installs busybox-static)"
	}
	return ""
}

func requireEnv(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip("fault: " + skipReason)
	}
}

// makeBusybox writes a minimal image tree: a static busybox and its applets.
func makeBusybox(dir string) error {
	for _, d := range []string{"bin", "tmp", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		return err
	}
	for _, a := range []string{"sh", "cat", "echo", "ls", "rm", "mkdir", "sleep", "dd", "head", "true", "sync", "kill", "ps"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
}

// row is one injected fault's result, for the report.
type row struct {
	fault, point, backend string
	seen                  string // what the user was told (or "ok: ...")
	after                 string // the sandbox after a daemon restart
	pass                  bool
}

var (
	rowsMu sync.Mutex
	rows   []row
)

func record(t *testing.T, r row) {
	r.pass = !t.Failed()
	rowsMu.Lock()
	rows = append(rows, r)
	rowsMu.Unlock()
	t.Logf("RESULT %s @ %s (%s): user saw: %s | after restart: %s | pass %v", r.fault, r.point, r.backend, r.seen, r.after, r.pass)
}

// writeReport prints the table of results, and writes it to
// AGENTKERNEL_FAULT_REPORT if set.
func writeReport(took time.Duration) {
	rowsMu.Lock()
	defer rowsMu.Unlock()
	if len(rows) == 0 {
		return
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].backend < rows[j].backend })
	var b strings.Builder
	passed := 0
	for _, r := range rows {
		if r.pass {
			passed++
		}
	}
	fmt.Fprintf(&b, "fault suite: %d faults injected, %d passed, %d failed, %s (full %v)\n", len(rows), passed, len(rows)-passed, took.Round(time.Second), full)
	for _, r := range rows {
		res := "pass"
		if !r.pass {
			res = "FAIL"
		}
		fmt.Fprintf(&b, "%-4s %-9s %-32s %-16s | %s | %s\n", res, r.backend, r.fault, r.point, r.seen, r.after)
	}
	fmt.Fprint(os.Stderr, b.String())
	if p := os.Getenv("AGENTKERNEL_FAULT_REPORT"); p != "" {
		os.WriteFile(p, []byte(b.String()), 0o644)
	}
}

// repeat is how many times the full variant runs each case.
func repeat() int {
	if !full {
		return 1
	}
	if n, err := strconv.Atoi(os.Getenv("AGENTKERNEL_FAULT_REPEAT")); err == nil && n > 0 {
		return n
	}
	return 3
}
