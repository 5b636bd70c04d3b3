package fault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/faultpoint"
	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// cliTimeout bounds one CLI invocation.
const cliTimeout = 90 * time.Second

// fenv is one home and the daemon the test runs in it (started by the
// test itself, `serve --no-tcp`, so that it can be given a fault point and
// killed and restarted at will).
type fenv struct {
	t       *testing.T
	h       *akhome.Home
	markers string // the fault points' marker directory

	daemon     *exec.Cmd
	daemonDone chan struct{}
	// daemonOut is every daemon's output, also kept here because the
	// home's daemon.log may be on a full disk.
	daemonOut syncBuf
}

// newFenv makes a fresh home (in parent, or /tmp) whose leftovers are
// checked when t ends: every sandbox removed through the API, the daemon
// stopped, then no process, mount, cgroup, runc container, network
// namespace, sandbox file or store row may remain.
func newFenv(t *testing.T, parent string) *fenv {
	t.Helper()
	var h *akhome.Home
	var err error
	if parent == "" {
		h, err = akhome.New("akflt")
	} else {
		dir, derr := os.MkdirTemp(parent, "akflt")
		if derr != nil {
			t.Fatal(derr)
		}
		h, err = akhome.At(dir)
	}
	if err != nil {
		t.Fatal(err)
	}
	f := &fenv{t: t, h: h, markers: filepath.Join(h.Dir, "faultpoints")}
	if err := os.MkdirAll(f.markers, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(f.markers) // release any pause
		if !akhome.SocketAnswers(h.Socket()) {
			f.start("")
		}
		problems := h.Teardown()
		for _, p := range problems {
			t.Errorf("leftover in %s: %s", h.Dir, p)
		}
		if t.Failed() {
			var b strings.Builder
			h.DumpLogs(&b, 16<<10)
			t.Log(b.String())
			t.Logf("===== the daemons' output =====\n%s", cut(f.daemonOut.String(), 32<<10))
		}
		if f.daemonDone != nil {
			select {
			case <-f.daemonDone:
			case <-time.After(20 * time.Second):
			}
		}
		h.RemoveHome()
	})
	return f
}

// start runs a daemon in the home, pausing at point ("" for none), and
// waits until it answers.
func (f *fenv) start(point string) {
	f.t.Helper()
	if up, out := f.spawn(point); !up {
		f.t.Fatalf("the daemon did not come up (point %q):\n%s", point, out)
	}
}

// tryStart is start for a daemon that may refuse to start: it returns
// false and what the daemon wrote if it exits instead of answering.
func (f *fenv) tryStart() (bool, string) {
	f.t.Helper()
	return f.spawn("")
}

// spawn starts `agentkernel serve --no-tcp` (its output appended to the
// home's daemon.log) and waits until it answers or exits; it returns
// whether it answers and what it wrote.
func (f *fenv) spawn(point string) (bool, string) {
	f.t.Helper()
	if err := os.MkdirAll(f.markers, 0o700); err != nil {
		f.t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(f.h.Dir, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		f.t.Fatal(err)
	}
	defer logf.Close()
	var out syncBuf
	cmd := exec.Command(akBin, "serve", "--no-tcp")
	cmd.Env = f.h.Environ()
	if point != "" {
		cmd.Env = append(cmd.Env, faultpoint.Env+"="+point, faultpoint.DirEnv+"="+f.markers)
	}
	// A full disk must not stop the copy (the daemon would then die of
	// SIGPIPE, which with a log file as its stderr it never would).
	cmd.Stdout = io.MultiWriter(&out, &f.daemonOut, ignoreErrors{logf})
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	f.daemon, f.daemonDone = cmd, done
	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	akhome.WaitFor(30*time.Second, func() bool { return exited() || akhome.SocketAnswers(f.h.Socket()) })
	if exited() || !akhome.SocketAnswers(f.h.Socket()) {
		return false, out.String()
	}
	return true, out.String()
}

// daemonPID is the running daemon's pid.
func (f *fenv) daemonPID() int {
	if f.daemon == nil || f.daemon.Process == nil {
		return 0
	}
	return f.daemon.Process.Pid
}

// kill9Daemon kills the daemon with SIGKILL and waits for it to be gone.
func (f *fenv) kill9Daemon() {
	f.t.Helper()
	f.signalDaemon(syscall.SIGKILL)
}

// stopDaemon stops the daemon with SIGTERM (as a service manager does) and
// waits for it to exit.
func (f *fenv) stopDaemon() {
	f.t.Helper()
	f.signalDaemon(syscall.SIGTERM)
}

func (f *fenv) signalDaemon(sig syscall.Signal) {
	f.t.Helper()
	if f.daemon == nil {
		return
	}
	f.daemon.Process.Signal(sig)
	select {
	case <-f.daemonDone:
	case <-time.After(30 * time.Second):
		f.daemon.Process.Kill()
		<-f.daemonDone
		f.t.Errorf("the daemon did not exit within 30s of %v", sig)
	}
	f.daemon = nil
}

// restart stops the daemon (SIGTERM) and starts a new one, without fault
// point.
func (f *fenv) restart() {
	f.t.Helper()
	f.stopDaemon()
	f.start("")
}

// waitMarkerOr waits until the daemon pauses at point, and returns false
// if op ended first.
func (f *fenv) waitMarkerOr(point string, op *running) bool {
	f.t.Helper()
	p := filepath.Join(f.markers, point)
	ended := false
	ok := akhome.WaitFor(60*time.Second, func() bool {
		if _, err := os.Stat(p); err == nil {
			return true
		}
		ended = op.exited()
		return ended
	})
	if !ok {
		f.t.Fatalf("the daemon never reached fault point %s", point)
	}
	if ended {
		// A removal answers before its background teardown pauses.
		return akhome.WaitFor(5*time.Second, func() bool { _, err := os.Stat(p); return err == nil })
	}
	return true
}

// release lets a paused daemon go on.
func (f *fenv) release(point string) { os.Remove(filepath.Join(f.markers, point)) }

// result is what one CLI invocation did.
type result struct {
	args           []string
	stdout, stderr string
	code           int
	took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("agentkernel %s: exit %d\nstdout: %q\nstderr: %q", strings.Join(r.args, " "), r.code, cut(r.stdout, 400), r.stderr)
}

// ak runs the CLI to the end.
func (f *fenv) ak(args ...string) result {
	f.t.Helper()
	return f.bg(nil, args...).wait()
}

// ok runs the CLI and fails the test unless it exits 0.
func (f *fenv) ok(args ...string) result {
	f.t.Helper()
	r := f.ak(args...)
	if r.code != 0 {
		f.t.Fatalf("%v", r)
	}
	return r
}

// running is a CLI invocation in the background.
type running struct {
	f        *fenv
	args     []string
	cmd      *exec.Cmd
	out, err syncBuf
	done     chan error
	started  time.Time
}

// bg starts the CLI with args (stdin may be nil).
func (f *fenv) bg(stdin io.Reader, args ...string) *running {
	f.t.Helper()
	r := &running{f: f, args: args, done: make(chan error, 1), started: time.Now()}
	r.cmd = exec.Command(akBin, args...)
	r.cmd.Env = f.h.Environ()
	r.cmd.Stdin, r.cmd.Stdout, r.cmd.Stderr = stdin, &r.out, &r.err
	r.cmd.WaitDelay = 5 * time.Second
	if err := r.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	return r
}

// exited reports whether the CLI has ended (without consuming its result).
func (r *running) exited() bool {
	select {
	case err := <-r.done:
		r.done <- err
		return true
	default:
		return false
	}
}

// wait waits (at most cliTimeout) for the CLI to end.
func (r *running) wait() result {
	r.f.t.Helper()
	return r.waitFor(cliTimeout)
}

// waitFor waits at most d for the CLI to end.
func (r *running) waitFor(d time.Duration) result {
	r.f.t.Helper()
	var err error
	select {
	case err = <-r.done:
	case <-time.After(d):
		r.cmd.Process.Kill()
		<-r.done
		r.f.t.Fatalf("agentkernel %s: still running after %v\nstderr: %s", strings.Join(r.args, " "), d, r.err.String())
	}
	res := result{args: r.args, stdout: r.out.String(), stderr: r.err.String(), took: time.Since(r.started)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		r.f.t.Fatalf("agentkernel %s: %v", strings.Join(r.args, " "), err)
	}
	return res
}

// list is `sandbox list --json`; every UUID is remembered for the leak check.
func (f *fenv) list() []api.SandboxInfo {
	f.t.Helper()
	r := f.ok("sandbox", "list", "--json")
	var l []api.SandboxInfo
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
		f.t.Fatalf("sandbox list --json: %v\n%s", err, r.stdout)
	}
	for _, sb := range l {
		f.h.Remember(sb.UUID)
	}
	return l
}

// find returns the listed sandbox called name.
func find(l []api.SandboxInfo, name string) (api.SandboxInfo, bool) {
	for _, sb := range l {
		if sb.Name == name {
			return sb, true
		}
	}
	return api.SandboxInfo{}, false
}

// onlySandboxDir waits for the state directory of the one sandbox being
// made in the home and returns its UUID.
func (f *fenv) onlySandboxUUID() string {
	f.t.Helper()
	var uuid string
	if !akhome.WaitFor(30*time.Second, func() bool {
		ents, _ := os.ReadDir(f.h.Layout().SandboxesDir())
		for _, e := range ents {
			if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
				uuid = akhome.DashedUUID(e.Name())
				return true
			}
		}
		return false
	}) {
		f.t.Fatal("no sandbox directory appeared")
	}
	f.h.Remember(uuid)
	return uuid
}

// syncBuf is a bytes.Buffer safe for a writer and a reader at once.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ignoreErrors is a writer that reports every write as done.
type ignoreErrors struct{ w io.Writer }

func (i ignoreErrors) Write(p []byte) (int, error) {
	i.w.Write(p)
	return len(p), nil
}

// tail is the last n bytes of file p.
func tail(p string, n int) string {
	b, _ := os.ReadFile(p)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
