package supervisor

import (
	"bufio"
	"context"
	"errors"
	"github.com/agentkernel/agentkernel/internal/backend"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/testutil"
)

var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "suptest")
	if err != nil {
		panic(err)
	}
	agentBin, err = testutil.BuildAgent(dir)
	if err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// procInstance runs the real guest agent as a plain child process: the
// supervisor's logic does not depend on isolation, so this exercises it
// without runc (the container backend's tests and the integration tests
// cover the supervisor with real sandboxes).
type procInstance struct {
	cmd    *exec.Cmd
	sock   string
	exited chan struct{}
	err    error
}

func startProc(dir string) (*procInstance, error) {
	p := &procInstance{sock: filepath.Join(dir, "a.sock"), exited: make(chan struct{})}
	p.cmd = exec.Command(agentBin, "--listen", "unix:"+p.sock)
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(p.sock); err == nil {
			return p, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Stop(context.Background())
	return nil, errors.New("agent socket never appeared")
}

func (p *procInstance) DialAgent(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", p.sock)
}
func (p *procInstance) Exited() <-chan struct{} { return p.exited }
func (p *procInstance) ExitError() error        { return p.err }
func (p *procInstance) Stop(ctx context.Context) error {
	p.cmd.Process.Kill()
	<-p.exited
	return nil
}

// startSupervisor runs Run in the background and waits for its ready line.
func startSupervisor(t *testing.T, start startFunc) (string, <-chan error, string) {
	t.Helper()
	dir := t.TempDir()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Config{Dir: dir, Ready: pw, Backend: start, Spec: &backend.Spec{Name: "test"}})
	}()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	pr.Close()
	return dir, done, strings.TrimSpace(line)
}

func TestRunStopAndStatus(t *testing.T) {
	var inst *procInstance
	dir, done, ready := startSupervisor(t, startFunc(func(ctx context.Context, _ *backend.NetworkAttachment) (backend.Instance, error) {
		p, err := startProc(t.TempDir())
		inst = p
		return p, err
	}))
	if ready != "ok" {
		t.Fatalf("ready line %q", ready)
	}
	c := Dial(dir)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || st.State != "running" || st.PID != os.Getpid() {
		t.Fatalf("status %+v %v", st, err)
	}
	if c.PID() != os.Getpid() {
		t.Errorf("pid file: %d", c.PID())
	}
	// Two daemon connections at once, each spliced to its own agent session.
	for i := 0; i < 2; i++ {
		conn, err := c.DialAgent(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ac, err := agentproto.NewClient(conn)
		if err != nil {
			t.Fatalf("agent through the splice: %v", err)
		}
		defer ac.Close()
		p, err := ac.Exec(ctx, agentproto.ExecRequest{Argv: []string{"true"}})
		if err != nil {
			t.Fatal(err)
		}
		if es, err := p.Wait(); err != nil || es.Code != 0 {
			t.Errorf("exec through the splice: %+v %v", es, err)
		}
	}
	st, err = c.Stop(ctx)
	if err != nil || st.State != "exited" || st.Exit == nil || !st.Exit.Requested || st.Exit.Error != "" {
		t.Fatalf("stop: %+v %v", st, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-inst.exited:
	default:
		t.Error("the instance is still running after stop")
	}
	e, err := ReadExit(dir)
	if err != nil || e == nil || !e.Requested {
		t.Errorf("exit record %+v %v", e, err)
	}
	for _, s := range []string{CtlSocket, AgentSocket} {
		if _, err := os.Stat(filepath.Join(dir, s)); !os.IsNotExist(err) {
			t.Errorf("%s left behind: %v", s, err)
		}
	}
	if _, err := c.Status(ctx); err == nil {
		t.Error("status answered after the supervisor ended")
	}
}

func TestSandboxDiesOnItsOwn(t *testing.T) {
	var inst *procInstance
	dir, done, ready := startSupervisor(t, startFunc(func(ctx context.Context, _ *backend.NetworkAttachment) (backend.Instance, error) {
		p, err := startProc(t.TempDir())
		inst = p
		return p, err
	}))
	if ready != "ok" {
		t.Fatalf("ready line %q", ready)
	}
	c := Dial(dir)
	waited := make(chan Status, 1)
	go func() {
		st, _ := c.Wait(context.Background())
		waited <- st
	}()
	time.Sleep(50 * time.Millisecond)
	inst.cmd.Process.Kill()
	select {
	case st := <-waited:
		if st.State != "exited" || st.Exit == nil || st.Exit.Requested || st.Exit.Error == "" {
			t.Errorf("wait: %+v", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the sandbox died")
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if e, _ := ReadExit(dir); e == nil || e.Requested || !strings.Contains(e.Error, "killed") {
		t.Errorf("exit record %+v", e)
	}
}

func TestStartFailureIsReported(t *testing.T) {
	dir, done, ready := startSupervisor(t, startFunc(func(ctx context.Context, _ *backend.NetworkAttachment) (backend.Instance, error) {
		return nil, errors.New("kernel not found")
	}))
	if !strings.Contains(ready, "kernel not found") || !strings.HasPrefix(ready, "error:") {
		t.Errorf("ready line %q", ready)
	}
	if err := <-done; err == nil {
		t.Error("Run succeeded after a failed start")
	}
	if e, _ := ReadExit(dir); e == nil || !strings.Contains(e.Error, "kernel not found") {
		t.Errorf("exit record %+v", e)
	}
}

// TestSpawnReportsFailure runs a supervisor that fails through Spawn: the
// caller gets the error and the log tail, and no process is left.
func TestSpawnReportsFailure(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "console.log"), []byte("line one\nboot failed: no root\n"), 0o600)
	_, err := Spawn(context.Background(), dir, SpawnOptions{
		Exe:  "/bin/sh",
		Args: []string{"-c", `echo "error: starting sandbox: boom" >&3`},
	})
	if err == nil || !strings.Contains(err.Error(), "boom") || !strings.Contains(err.Error(), "boot failed: no root") {
		t.Errorf("spawn error: %v", err)
	}
	_, err = Spawn(context.Background(), dir, SpawnOptions{Exe: "/bin/sh", Args: []string{"-c", "exit 3"}})
	if err == nil || !strings.Contains(err.Error(), "supervisor exited before the sandbox was up") {
		t.Errorf("silent exit: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = Spawn(ctx, dir, SpawnOptions{Exe: "/bin/sh", Args: []string{"-c", "sleep 30"}})
	if err == nil || !strings.Contains(err.Error(), "did not start") {
		t.Errorf("hung start: %v", err)
	}
}

// startFunc is a backend whose Start is the function: the supervisor's
// tests start the real guest agent as a plain process (procInstance)
// instead of a sandbox.
type startFunc func(ctx context.Context, n *backend.NetworkAttachment) (backend.Instance, error)

func (f startFunc) Name() string { return "func" }
func (f startFunc) Capabilities() backend.Capabilities {
	return backend.Capabilities{NetworkGateway: true}
}
func (f startFunc) Cleanup(context.Context, *backend.Spec) error { return nil }
func (f startFunc) Start(ctx context.Context, spec *backend.Spec) (backend.Instance, error) {
	var a *backend.NetworkAttachment
	if spec.Gateway != nil {
		a = spec.Gateway.Attach
	}
	return f(ctx, a)
}
