package fault

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/faultpoint"
	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// The processes killed.
const (
	vDaemon     = "daemon"
	vSupervisor = "supervisor"
	vInit       = "init"    // runc's container init: the guest agent, PID 1 of the sandbox
	vRunsc      = "runsc"   // gVisor's sandbox (the sentry)
	vQEMU       = "qemu"    // the microVM
	vRestart    = "restart" // not a kill: the daemon stopped (SIGTERM) and started again
)

// The points of an operation at which they are killed.
const (
	pCreateRecorded = "create:recorded" // store row and state directory made, no supervisor yet (fault point)
	pCreateSpawned  = "create:spawned"  // supervisor and sandbox up, daemon not yet connected to the agent (fault point)
	pExec           = "exec:streaming"  // a streaming exec has printed its first line and runs
	pCp             = "cp:streaming"    // a tar stream into the sandbox is half sent
	pSnapshot       = "snapshot:diffed" // the snapshot's layer is made, the image not yet published (fault point)
	pRemove         = "remove:recorded" // the record is gone, the background teardown not begun (fault point)
)

var pointHook = map[string]string{
	pCreateRecorded: faultpoint.CreateRecorded,
	pCreateSpawned:  faultpoint.CreateSpawned,
	pSnapshot:       faultpoint.SnapshotDiffed,
	pRemove:         faultpoint.RemoveRecorded,
}

// kcase is one fault: victim killed at point on backend.
type kcase struct{ backend, victim, point string }

func (c kcase) name() string {
	return c.backend + "/" + c.victim + "@" + strings.ReplaceAll(c.point, ":", "-")
}

// cases is the matrix for backend: every victim at every point it can be
// killed at (the supervisor and the runtime do not exist before the
// supervisor is spawned).
func cases(backend string) []kcase {
	runtimeVictim := map[string]string{"container": vInit, "gvisor": vRunsc, "microvm": vQEMU}[backend]
	var out []kcase
	for _, p := range []string{pCreateRecorded, pCreateSpawned, pExec, pCp, pSnapshot, pRemove} {
		if p == pSnapshot && backend == "microvm" {
			continue // refused: the microvm backend cannot hand over its changes (ErrNotImplemented)
		}
		for _, v := range []string{vDaemon, vSupervisor, runtimeVictim} {
			if p == pCreateRecorded && v != vDaemon {
				continue
			}
			out = append(out, kcase{backend, v, p})
		}
	}
	out = append(out, kcase{backend, vRestart, pCreateRecorded}, kcase{backend, vRestart, pCreateSpawned})
	return out
}

// TestKill is the kill matrix on the container backend (runc).
func TestKill(t *testing.T) {
	requireEnv(t)
	for _, c := range cases("container") {
		for i := 0; i < repeat(); i++ {
			t.Run(c.name(), func(t *testing.T) { runKill(t, c) })
		}
	}
}

// TestKillMicroVM is the kill matrix on QEMU (TCG here). The short variant
// runs one case: QEMU killed during a streaming exec.
func TestKillMicroVM(t *testing.T) {
	requireEnv(t)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (scripts/setup.sh installs it)")
	}
	cs := []kcase{{"microvm", vQEMU, pExec}}
	if full {
		cs = cases("microvm")
	}
	for _, c := range cs {
		for i := 0; i < repeat(); i++ {
			t.Run(c.name(), func(t *testing.T) { runKill(t, c) })
		}
	}
}

// TestKillGVisor is the kill matrix on gVisor; only in the full variant.
func TestKillGVisor(t *testing.T) {
	requireEnv(t)
	if !full {
		t.Skip("gVisor faults run in the full variant only (make fault, AGENTKERNEL_FAULT=1)")
	}
	if m, _ := filepath.Glob("/var/cache/agentkernel/runsc/*/runsc"); len(m) == 0 {
		if _, err := exec.LookPath("runsc"); err != nil {
			t.Skip("runsc is not installed: run scripts/runsc.sh")
		}
	}
	for _, c := range cases("gvisor") {
		for i := 0; i < repeat(); i++ {
			t.Run(c.name(), func(t *testing.T) { runKill(t, c) })
		}
	}
}

// createFlags are the flags of every sandbox the suite makes.
func createFlags(backend string) []string {
	fl := []string{"--image", "fbox", "-B", backend}
	if backend == "microvm" {
		fl = append(fl, "--memory-mb", "256", "--vcpus", "1")
	}
	return fl
}

// prepare gives a fresh home a daemon paused at hook (if any) and the
// image; a microVM home gets its kernel (agentkernel setup).
func prepare(t *testing.T, backend, hook string) *fenv {
	f := newFenv(t, "")
	f.start(hook)
	if backend == "microvm" {
		// Setup copies the guest kernel and disks: on a busy host it takes
		// longer than an operation.
		if r := f.bg(nil, "setup").waitFor(5 * time.Minute); r.code != 0 {
			t.Fatalf("agentkernel setup: %v", r)
		}
	}
	f.ok("image", "import", "fbox", imageDir)
	return f
}

func runKill(t *testing.T, c kcase) {
	hook := pointHook[c.point]
	f := prepare(t, c.backend, hook)
	name := "f-" + strings.NewReplacer(":", "-", "/", "-").Replace(c.victim+"-"+c.point)
	existed := c.point != pCreateRecorded && c.point != pCreateSpawned
	var uuid string
	if existed {
		f.ok(append([]string{"sandbox", "create", name}, createFlags(c.backend)...)...)
		uuid = f.onlySandboxUUID()
		f.ok("exec", name, "--", "sh", "-c", "echo kept > /root/keep && sync")
	}

	var op *running
	var cpIn *io.PipeWriter
	switch c.point {
	case pCreateRecorded, pCreateSpawned:
		op = f.bg(nil, append([]string{"sandbox", "create", name}, createFlags(c.backend)...)...)
	case pExec:
		op = f.bg(nil, "exec", name, "--", "sh", "-c", "echo started; sleep 60; echo finished")
		if !akhome.WaitFor(60*time.Second, func() bool { return strings.Contains(op.out.String(), "started") }) {
			t.Fatalf("the streaming exec did not start: %q %q", op.out.String(), op.err.String())
		}
	case pCp:
		pr, pw := io.Pipe()
		cpIn = pw
		op = f.bg(pr, "cp", "-", name+":/root")
		tw := tar.NewWriter(pw)
		if err := tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: 64 << 20, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(make([]byte, 1<<20)); err != nil {
			t.Fatalf("writing the tar stream: %v (stderr %q)", err, op.err.String())
		}
		time.Sleep(300 * time.Millisecond) // the megabyte is on its way to the agent
	case pSnapshot:
		op = f.bg(nil, "snapshot", "take", name, "-n", name+"-snap")
	case pRemove:
		op = f.bg(nil, "sandbox", "remove", name)
	}
	if hook != "" && !f.waitMarkerOr(hook, op) {
		t.Fatalf("the operation ended before it reached fault point %s: %v", hook, op.wait())
	}
	if uuid == "" {
		uuid = f.onlySandboxUUID()
	}

	// The fault.
	switch c.victim {
	case vDaemon:
		f.kill9Daemon()
		f.release(hook)
	case vRestart:
		// Released first: a stopping daemon waits for its requests.
		go func() { time.Sleep(200 * time.Millisecond); f.release(hook) }()
		f.stopDaemon()
	default:
		kill9(t, f, c.victim, uuid)
		f.release(hook)
	}
	if cpIn != nil {
		go func() { time.Sleep(2 * time.Second); cpIn.CloseWithError(fmt.Errorf("the test stops sending")) }()
	}
	res := op.wait()
	if cpIn != nil {
		cpIn.Close()
	}
	seen := checkSeen(t, res, name, c.victim)
	if c.victim != vDaemon && c.victim != vRestart {
		// The daemon outlives every sandbox's processes.
		select {
		case <-f.daemonDone:
			t.Errorf("the daemon died when the %s of %s was killed; its output:\n%s", c.victim, name, cut(f.daemonOut.String(), 16<<10))
			seen += " [THE DAEMON DIED]"
			f.daemon = nil
		default:
		}
		if strings.Contains(res.stderr, "connection to the daemon was lost") {
			t.Errorf("the %s was killed, not the daemon, but the user is told the daemon was lost: %v", c.victim, res)
		}
	}

	// The daemon restarted (a new one after a kill of the old).
	if c.victim == vDaemon || c.victim == vRestart {
		f.start("")
	} else {
		f.restart()
	}
	want := wantListed
	switch {
	case c.point == pRemove && res.code == 0:
		want = wantGone
	case !existed:
		want = wantEither
	}
	after := f.checkConsistent(name, want)
	if c.point == pSnapshot {
		after += "; " + checkSnapshot(t, f, name+"-snap", res)
	}
	fault := "kill -9 " + c.victim
	if c.victim == vRestart {
		fault = "daemon restarted (SIGTERM)"
	}
	record(t, row{fault: fault, point: c.point, backend: c.backend, seen: seen, after: after})
}

// kill9 sends SIGKILL to the victim process of sandbox uuid.
func kill9(t *testing.T, f *fenv, victim, uuid string) {
	t.Helper()
	dir := f.h.SandboxDir(uuid)
	var pid int
	var err error
	switch victim {
	case vSupervisor:
		pid, err = akhome.ReadPID(filepath.Join(dir, "supervisor.pid"))
	case vInit, vRunsc:
		pid, err = akhome.ReadPID(filepath.Join(dir, "init.pid"))
		if victim == vRunsc && err == nil {
			pid = runscSandboxPID(pid)
		}
	case vQEMU:
		pid, err = akhome.ReadPID(filepath.Join(dir, "qemu.pid"))
	}
	if err != nil || !akhome.Alive(pid) {
		t.Fatalf("the %s of %s: pid %d, %v", victim, uuid, pid, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !akhome.WaitFor(10*time.Second, func() bool { return !akhome.Alive(pid) }) {
		t.Fatalf("the %s (pid %d) survived SIGKILL", victim, pid)
	}
}

// runscSandboxPID is the runsc sandbox process (the sentry) of the
// container whose init pid runsc reported: its parent chain holds a
// "runsc-sandbox" process.
func runscSandboxPID(pid int) int {
	for p := pid; p > 1; {
		if strings.Contains(akhome.Cmdline(p), "runsc-sandbox") || strings.Contains(akhome.Cmdline(p), " boot ") {
			return p
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			break
		}
		s := string(b)
		fs := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fs) < 2 {
			break
		}
		fmt.Sscan(fs[1], &p)
	}
	return pid
}

// causeWords say what happened, per victim.
var causeWords = map[string]*regexp.Regexp{
	vDaemon:     regexp.MustCompile(`daemon`),
	vRestart:    regexp.MustCompile(`daemon`),
	vSupervisor: regexp.MustCompile(`supervisor|died|killed|exited|stopped|ended|failed`),
	vInit:       regexp.MustCompile(`agent|supervisor|died|killed|exited|stopped|ended|failed`),
	vRunsc:      regexp.MustCompile(`agent|supervisor|died|killed|exited|stopped|ended|failed`),
	vQEMU:       regexp.MustCompile(`agent|supervisor|QEMU|qemu|died|killed|exited|stopped|ended|failed`),
}

// internalNoise is what a user must not be left with: a transport's words
// for what happened instead of an explanation.
var internalNoise = regexp.MustCompile(`frame header|unexpected EOF|: EOF$|^EOF$|broken pipe$|connection reset by peer$|StatusAbnormalClosure`)

// checkSeen checks what the CLI told the user: success, or an error that
// names the sandbox and what happened. It returns a one-line summary.
func checkSeen(t *testing.T, r result, name, victim string) string {
	t.Helper()
	if r.code == 0 {
		return "completed (exit 0)"
	}
	msg := strings.TrimSpace(r.stderr)
	if msg == "" {
		t.Errorf("%v: failed with no message", r)
		return fmt.Sprintf("exit %d, no message", r.code)
	}
	if !strings.Contains(msg, name) {
		t.Errorf("the error does not name the sandbox %s: %v", name, r)
	}
	if !causeWords[victim].MatchString(msg) {
		t.Errorf("the error does not say what happened (want %v): %v", causeWords[victim], r)
	}
	for _, line := range strings.Split(msg, "\n") {
		if internalNoise.MatchString(strings.TrimSpace(line)) {
			t.Errorf("the error is a transport's message, not an explanation: %q in %v", line, r)
		}
	}
	return fmt.Sprintf("exit %d: %s", r.code, oneLine(msg))
}

func oneLine(s string) string { return cut(strings.Join(strings.Fields(s), " "), 300) }

type wantState int

const (
	wantListed wantState = iota // the sandbox existed before the fault: it must still be listed
	wantGone                    // it was removed: it must be gone, all of it
	wantEither                  // the fault hit its creation: listed (and usable once started) or gone, all of it
)

// checkConsistent checks the home after the daemon restart: every listed
// sandbox is what the list says (running: it answers; otherwise nothing of
// it runs), nothing of an unlisted sandbox remains, and name is as wanted.
// A listed sandbox that is not running is started again and must still
// hold its files. It returns a summary.
func (f *fenv) checkConsistent(name string, want wantState) string {
	t := f.t
	t.Helper()
	var l []api.SandboxInfo
	var problems []string
	// Leftovers of an unlisted sandbox are removed in the background:
	// give the teardown a little time.
	akhome.WaitFor(20*time.Second, func() bool {
		l = f.list()
		problems = f.reality(l)
		return len(problems) == 0
	})
	for _, p := range problems {
		t.Errorf("after the daemon restart: %s", p)
	}
	sb, listed := find(l, name)
	var after string
	switch {
	case want == wantGone && listed:
		t.Errorf("removed sandbox %s is listed after the restart: %+v", name, sb)
	case want == wantGone:
		return "not listed, nothing of it left"
	case want == wantListed && !listed:
		t.Errorf("sandbox %s is LOST: not listed after the restart (list %v)", name, names(l))
		return "LOST"
	case !listed:
		return "not listed, nothing of it left"
	}
	after = "listed " + string(sb.Status)
	if sb.Error != "" {
		after += " (" + oneLine(sb.Error) + ")"
	}
	if sb.Status == api.StatusFailed && sb.Error == "" {
		t.Errorf("%s failed without a reason: %+v", name, sb)
	}
	if sb.Status != api.StatusRunning {
		r := f.ak("sandbox", "start", name)
		if r.code != 0 {
			t.Errorf("sandbox %s cannot be started again: %v", name, r)
			return after + "; start FAILED"
		}
		after += "; started again"
	}
	if want == wantListed {
		r := f.ak("exec", name, "--", "cat", "/root/keep")
		if r.code != 0 || r.stdout != "kept\n" {
			t.Errorf("sandbox %s lost its files: %v", name, r)
			return after + "; files LOST"
		}
		after += ", files intact"
	} else if r := f.ak("exec", name, "--", "true"); r.code != 0 {
		t.Errorf("exec in %s: %v", name, r)
	} else {
		after += ", answers"
	}
	return after
}

func names(l []api.SandboxInfo) []string {
	var out []string
	for _, sb := range l {
		out = append(out, sb.Name+"="+string(sb.Status))
	}
	return out
}

// reality compares the list with what runs: a running sandbox's
// supervisor is alive and an exec answers; a sandbox not running has no
// live supervisor, init or QEMU; and no process, runc container or state
// directory belongs to a sandbox not listed.
func (f *fenv) reality(l []api.SandboxInfo) []string {
	var out []string
	listed := map[string]api.SandboxInfo{}
	for _, sb := range l {
		listed[sb.UUID] = sb
		dir := f.h.SandboxDir(sb.UUID)
		sup := alivePID(filepath.Join(dir, "supervisor.pid"))
		if sb.Status == api.StatusRunning {
			if !sup {
				out = append(out, fmt.Sprintf("%s is listed running but its supervisor is not alive", sb.Name))
			}
			if r := f.ak("exec", sb.Name, "--", "true"); r.code != 0 {
				out = append(out, fmt.Sprintf("%s is listed running but an exec fails: %v", sb.Name, r))
			}
			continue
		}
		for _, pf := range []string{"supervisor.pid", "init.pid", "qemu.pid"} {
			if alivePID(filepath.Join(dir, pf)) {
				out = append(out, fmt.Sprintf("%s is listed %s but its %s process runs", sb.Name, sb.Status, pf))
			}
		}
	}
	daemon := f.daemonPID()
	for _, pid := range f.h.Processes() {
		if pid == daemon {
			continue
		}
		if !mentionsAny(pid, listed) {
			out = append(out, fmt.Sprintf("process %d (%s) runs for no listed sandbox", pid, cut(akhome.Cmdline(pid), 200)))
		}
	}
	for _, id := range f.h.RuncContainers() {
		if sb, ok := listed[id]; !ok || sb.Status != api.StatusRunning {
			out = append(out, fmt.Sprintf("runc container %s belongs to no running listed sandbox", id))
		}
	}
	ents, _ := os.ReadDir(f.h.Layout().SandboxesDir())
	for _, e := range ents {
		if _, ok := listed[akhome.DashedUUID(e.Name())]; !ok && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, fmt.Sprintf("state directory %s belongs to no listed sandbox", e.Name()))
		}
	}
	return out
}

func alivePID(p string) bool {
	pid, err := akhome.ReadPID(p)
	return err == nil && akhome.Alive(pid)
}

// mentionsAny reports whether pid's command line or cgroup names one of
// the sandboxes (by UUID, dashed or as its state directory's name).
func mentionsAny(pid int, listed map[string]api.SandboxInfo) bool {
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	s := akhome.Cmdline(pid) + " " + string(cg)
	for u := range listed {
		if strings.Contains(s, u) || strings.Contains(s, strings.ReplaceAll(u, "-", "")) {
			return true
		}
	}
	return false
}

// checkSnapshot: a snapshot that was reported taken exists and restores;
// one that failed does not exist half made (or, if it exists, restores).
func checkSnapshot(t *testing.T, f *fenv, snap string, res result) string {
	t.Helper()
	r := f.ak("snapshot", "inspect", snap)
	exists := r.code == 0
	if res.code == 0 && !exists {
		t.Errorf("snapshot %s was reported taken but is not there: %v", snap, r)
		return "snapshot MISSING"
	}
	if !exists {
		return "no snapshot (none half made)"
	}
	as := snap + "-r"
	if r := f.ak("snapshot", "restore", snap, "--as", as); r.code != 0 {
		t.Errorf("snapshot %s exists but does not restore: %v", snap, r)
		return "snapshot does not restore"
	}
	if r := f.ak("exec", as, "--", "cat", "/root/keep"); r.code != 0 || r.stdout != "kept\n" {
		t.Errorf("the restored snapshot %s lacks /root/keep: %v", snap, r)
	}
	f.ak("sandbox", "remove", as)
	f.ak("snapshot", "delete", snap)
	return "snapshot restores"
}
