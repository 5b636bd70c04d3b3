package agent

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentkernel/agentkernel/internal/agentproto"
)

func TestExplainLimits(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, "memory.oom_control")
	os.WriteFile(v1, []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n"), 0o644)
	if n, ok := firstCounter([]string{filepath.Join(dir, "missing"), v1}, "oom_kill"); !ok || n != 7 {
		t.Fatalf("oom_kill: %d %v", n, ok)
	}
	if _, ok := firstCounter([]string{v1}, "nope"); ok {
		t.Fatal("a missing key was found")
	}
	killed := agentproto.ExitStatus{Code: 137, Signal: int(syscall.SIGKILL)}
	before := limitCounters{oomKills: 1, ok: true}
	if st := explainLimits(killed, before, limitCounters{oomKills: 2, ok: true}); !strings.Contains(st.Error, "out-of-memory") {
		t.Errorf("OOM kill: %+v", st)
	}
	if st := explainLimits(killed, before, before); st.Error != "" {
		t.Errorf("a SIGKILL without an OOM kill: %+v", st)
	}
	if st := explainLimits(agentproto.ExitStatus{Code: 2}, limitCounters{}, limitCounters{pidsMax: 5}); !strings.Contains(st.Error, "process limit (5 forks") &&
		!strings.Contains(st.Error, "5 forks refused") {
		t.Errorf("pids: %+v", st)
	}
	if st := explainLimits(agentproto.ExitStatus{Code: 0}, limitCounters{}, limitCounters{pidsMax: 5}); st.Error != "" {
		t.Errorf("a success is explained: %+v", st)
	}
	timeout := agentproto.ExitStatus{Code: 124, TimedOut: true, Error: "timed out"}
	if st := explainLimits(timeout, before, limitCounters{oomKills: 9, ok: true}); st.Error != "timed out" {
		t.Errorf("an explained status changed: %+v", st)
	}
	full := limitCounters{disk: agentproto.DiskStat{Bytes: 64 << 20, Avail: 4096, Files: 100, FilesFree: 50}}
	if st := explainLimits(agentproto.ExitStatus{Code: 1}, limitCounters{}, full); !strings.Contains(st.Error, "disk is full (64 MiB)") ||
		!strings.Contains(st.Error, "No space left on device") {
		t.Errorf("disk full: %+v", st)
	}
	if st := explainLimits(agentproto.ExitStatus{Code: 0}, limitCounters{}, full); st.Error != "" {
		t.Errorf("a success on a full disk is explained: %+v", st)
	}
	roomy := limitCounters{disk: agentproto.DiskStat{Bytes: 64 << 20, Avail: 8 << 20, Files: 100, FilesFree: 50}}
	if st := explainLimits(agentproto.ExitStatus{Code: 1}, limitCounters{}, roomy); st.Error != "" {
		t.Errorf("a failure with room on the disk is explained: %+v", st)
	}
	noInodes := limitCounters{disk: agentproto.DiskStat{Bytes: 64 << 20, Avail: 8 << 20, Files: 100}}
	if st := explainLimits(agentproto.ExitStatus{Code: 1}, limitCounters{}, noInodes); !strings.Contains(st.Error, "disk is full") {
		t.Errorf("no inodes left: %+v", st)
	}
	if (agentproto.DiskStat{}).Full() {
		t.Error("an unknown disk counts as full")
	}
}
