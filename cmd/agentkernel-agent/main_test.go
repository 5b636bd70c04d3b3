package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/agent/agenttest"
	"github.com/agentkernel/agentkernel/internal/agentproto"
)

// agentBin is the real agent, built once by TestMain.
var agentBin string

const testVersion = "test-1.2.3"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agentkernel-agent-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin = filepath.Join(dir, "agentkernel-agent")
	build := exec.Command("go", "build", "-o", agentBin, "-ldflags", "-X github.com/agentkernel/agentkernel/internal/version.Version="+testVersion, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// agentProc is a running agent binary.
type agentProc struct {
	cmd    *exec.Cmd
	sock   string
	exited chan struct{}
	err    error // the exit error, valid after exited is closed
}

const secret = "s3cr3t-binary"

// startAgent runs the agent (prefixed by wrapper, e.g. unshare) listening
// on a Unix socket in a temporary directory.
func startAgent(t testing.TB, wrapper ...string) *agentProc {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	argv := append(append([]string{}, wrapper...), agentBin, "--listen", "unix:"+sock)
	a := &agentProc{cmd: exec.Command(argv[0], argv[1:]...), sock: sock, exited: make(chan struct{})}
	a.cmd.Env = append(os.Environ(), "AGENTKERNEL_TEST_SECRET="+secret)
	a.cmd.Stderr = os.Stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.err = a.cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		a.cmd.Process.Kill()
		<-a.exited
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Connectable, not only present: the socket file exists from
		// bind(2), a moment before listen(2), when a connect is refused
		// (seen under load in CI).
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return a
		}
		select {
		case <-a.exited:
			t.Fatalf("agent exited early: %v", a.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("agent socket did not appear")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (a *agentProc) dial(t testing.TB) *agentproto.Client {
	t.Helper()
	conn, err := net.Dial("unix", a.sock)
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentproto.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitExit waits for the agent to exit and returns its exit code.
func (a *agentProc) waitExit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-a.exited:
	case <-time.After(d):
		t.Fatalf("agent did not exit within %v", d)
	}
	return a.cmd.ProcessState.ExitCode()
}

func TestBinarySuite(t *testing.T) {
	a := startAgent(t)
	agenttest.Run(t, agenttest.Env{
		Client:  func(t *testing.T) *agentproto.Client { return a.dial(t) },
		Dir:     t.TempDir(),
		HostPID: a.cmd.Process.Pid,
		Secret:  secret,
	})
}

func TestHelloAndReconnect(t *testing.T) {
	a := startAgent(t)
	for range 3 {
		c := a.dial(t)
		info := c.Info()
		if info.AgentVersion != testVersion || info.PID != a.cmd.Process.Pid || info.Version != agentproto.Version {
			t.Errorf("hello %+v", info)
		}
		r := agenttest.RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"echo", "hi"}}, "")
		if r.Stdout != "hi\n" {
			t.Errorf("exec: %+v", r)
		}
		c.Close()
	}
}

func TestVersionFlag(t *testing.T) {
	out, err := exec.Command(agentBin, "--version").Output()
	if err != nil || strings.TrimSpace(string(out)) != testVersion {
		t.Errorf("--version: %q %v", out, err)
	}
	if err := exec.Command(agentBin, "--listen", "tcp:1.2.3.4:5").Run(); err == nil {
		t.Errorf("bad --listen accepted")
	}
}

// TestListenFD: an inherited connected socket carries one session; an
// inherited listening socket serves several.
func TestListenFD(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	host, guest := os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "guest")
	cmd := exec.Command(agentBin, "--listen", "fd:3")
	cmd.ExtraFiles = []*os.File{guest}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	guest.Close()
	conn, err := net.FileConn(host)
	host.Close()
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentproto.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := agenttest.RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"echo", "fd"}}, ""); r.Stdout != "fd\n" {
		t.Errorf("exec over fd:3: %+v", r)
	}

	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "l.sock"))
	if err != nil {
		t.Fatal(err)
	}
	lf, err := l.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	cmd2 := exec.Command(agentBin, "--listen", "fd:3")
	cmd2.ExtraFiles = []*os.File{lf}
	cmd2.Stderr = os.Stderr
	if err := cmd2.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd2.Process.Kill(); cmd2.Wait() }()
	lf.Close()
	for i := range 2 {
		conn, err := net.Dial("unix", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := agentproto.NewClient(conn)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(context.Background()); err != nil {
			t.Errorf("session %d over an inherited listener: %v", i, err)
		}
		c.Close()
	}
	l.Close()
}

func TestShutdownExitsZero(t *testing.T) {
	a := startAgent(t)
	c := a.dial(t)
	bg, err := c.StartBackground(context.Background(), agentproto.ExecRequest{Argv: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code := a.waitExit(t, 15*time.Second); code != 0 {
		t.Errorf("agent exit code %d", code)
	}
	if syscall.Kill(bg.PID, 0) == nil {
		t.Errorf("background process %d survived shutdown", bg.PID)
	}
}

// TestSIGTERM: the agent forwards SIGTERM to its processes and exits 0.
func TestSIGTERM(t *testing.T) {
	a := startAgent(t)
	c := a.dial(t)
	marker := filepath.Join(t.TempDir(), "got-term")
	bg, err := c.StartBackground(context.Background(), agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c",
		"trap 'echo term > " + marker + "; exit 0' TERM; echo ready; while :; do sleep 0.05; done"}})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, c, bg.ID, "ready")
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.waitExit(t, 15*time.Second); code != 0 {
		t.Errorf("agent exit code %d", code)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the process did not get SIGTERM: %v", err)
	}
}

func waitLog(t *testing.T, c *agentproto.Client, id, want string) {
	t.Helper()
	for range 500 {
		out, _, err := c.BackgroundLogs(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("background %s never printed %q", id, want)
}

// TestSubreaper: not being PID 1, the agent is a child subreaper: a
// double-forked orphan is reparented to it and reaped when it exits.
func TestSubreaper(t *testing.T) {
	a := startAgent(t)
	c := a.dial(t)
	r := agenttest.RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c", "(sleep 0.5 & echo $!); exit 0"}}, "")
	pid, err := strconv.Atoi(strings.TrimSpace(r.Stdout))
	if err != nil {
		t.Fatalf("orphan pid %q", r.Stdout)
	}
	if ppid := parentOf(pid); ppid != a.cmd.Process.Pid {
		t.Errorf("orphan %d has parent %d, want the agent %d", pid, ppid, a.cmd.Process.Pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			return // exited and reaped
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphan %d not reaped (state %q)", pid, stateOf(pid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStat returns the fields of /proc/pid/stat after the command name.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
}

func parentOf(pid int) int {
	f := procStat(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func stateOf(pid int) string {
	if f := procStat(pid); len(f) > 0 {
		return f[0]
	}
	return ""
}

// TestPID1 runs the agent as init of a new PID namespace: it must reap
// orphans, and forward SIGTERM before exiting 0.
func TestPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare --pid")
	}
	if err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("unshare --pid --fork --mount-proc does not work here: %v", err)
	}
	a := startAgent(t, "unshare", "--pid", "--fork", "--mount-proc")
	c := a.dial(t)
	if c.Info().PID != 1 {
		t.Fatalf("agent pid %d, want 1", c.Info().PID)
	}
	// Twenty orphans, reparented to init when their parents exit.
	r := agenttest.RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c",
		"for i in $(seq 20); do (sleep 0.2 &); done; exit 0"}}, "")
	if r.Status.Code != 0 {
		t.Fatalf("spawning orphans: %+v", r)
	}
	var zombies []string
	for range 100 {
		time.Sleep(50 * time.Millisecond)
		zombies = zombiesIn(t, c)
		if len(zombies) == 0 && !sleepersLeft(t, c) {
			break
		}
	}
	if len(zombies) != 0 {
		t.Errorf("zombies left under the agent as PID 1: %v", zombies)
	}

	marker := filepath.Join(t.TempDir(), "got-term")
	bg, err := c.StartBackground(context.Background(), agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c",
		"trap 'echo term > " + marker + "; exit 0' TERM; echo ready; while :; do sleep 0.05; done"}})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, c, bg.ID, "ready")
	init := childOf(a.cmd.Process.Pid)
	if init == 0 {
		t.Fatal("cannot find the agent's host pid")
	}
	syscall.Kill(init, syscall.SIGTERM)
	if code := a.waitExit(t, 15*time.Second); code != 0 {
		t.Errorf("unshare (agent) exit code %d", code)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("SIGTERM was not forwarded: %v", err)
	}
}

// zombiesIn lists the zombies in the agent's PID namespace.
func zombiesIn(t *testing.T, c *agentproto.Client) []string {
	r := agenttest.RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c",
		"for f in /proc/[0-9]*/stat; do cat $f 2>/dev/null; echo; done"}}, "")
	var out []string
	for _, line := range strings.Split(r.Stdout, "\n") {
		if i := strings.LastIndexByte(line, ')'); i > 0 && strings.HasPrefix(line[i+1:], " Z") {
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out
}

func sleepersLeft(t *testing.T, c *agentproto.Client) bool {
	r := agenttest.RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c", "cat /proc/[0-9]*/comm 2>/dev/null"}}, "")
	return strings.Contains(r.Stdout, "sleep")
}

// childOf returns the first child of pid.
func childOf(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// BenchmarkExecTrue measures the round trip of exec'ing `true` through the
// real agent over a Unix socket: Exec, drain, Wait.
func BenchmarkExecTrue(b *testing.B) {
	a := startAgent(b)
	c := a.dial(b)
	ctx := context.Background()
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		p, err := c.Exec(ctx, agentproto.ExecRequest{Argv: []string{"true"}})
		if err != nil {
			b.Fatal(err)
		}
		go io.Copy(io.Discard, p.Stderr())
		io.Copy(io.Discard, p.Stdout())
		if st, err := p.Wait(); err != nil || st.Code != 0 {
			b.Fatalf("%+v %v", st, err)
		}
		p.Close()
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	pct := func(p float64) float64 {
		return float64(durations[int(p*float64(len(durations)-1))].Microseconds())
	}
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}
