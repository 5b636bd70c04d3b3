package agent

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agent/agenttest"
	"github.com/agentkernel/agentkernel/internal/agentproto"
)

// socketpair returns two connected Unix stream sockets.
func socketpair(t testing.TB) (net.Conn, net.Conn) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// startServer runs a Server for the test and returns a function that
// connects a new client to it over a socketpair.
func startServer(t *testing.T, cfg Config) (*Server, func(t *testing.T) *agentproto.Client) {
	srv := New(cfg)
	t.Cleanup(func() { srv.Close() })
	return srv, func(t *testing.T) *agentproto.Client {
		host, guest := socketpair(t)
		go srv.ServeConn(context.Background(), guest)
		c, err := agentproto.NewClient(host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

func TestSuiteInProcess(t *testing.T) {
	t.Setenv("AGENTKERNEL_TEST_SECRET", "s3cr3t-in-process")
	_, dial := startServer(t, Config{})
	agenttest.Run(t, agenttest.Env{Client: dial, Dir: t.TempDir(), Secret: "s3cr3t-in-process"})
}

func TestNetPipe(t *testing.T) {
	srv := New(Config{})
	defer srv.Close()
	host, guest := net.Pipe()
	go srv.ServeConn(context.Background(), guest)
	c, err := agentproto.NewClient(host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := agenttest.RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"echo", "over a pipe"}}, "")
	if r.Stdout != "over a pipe\n" {
		t.Errorf("got %+v", r)
	}
}

// TestSessionLossKillsExecs: processes exec'd in a session die with it;
// background processes do not.
func TestSessionLossKillsExecs(t *testing.T) {
	_, dial := startServer(t, Config{})
	c := dial(t)
	ctx := context.Background()
	p, err := c.Exec(ctx, agentproto.ExecRequest{Argv: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	bg, err := c.StartBackground(ctx, agentproto.ExecRequest{Argv: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := p.Wait(); err == nil {
		t.Errorf("Wait after Close: no error")
	}
	deadline := time.Now().Add(10 * time.Second)
	for unix.Kill(p.PID(), 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("exec'd process %d survived its session", p.PID())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c2 := dial(t)
	info, err := c2.GetBackground(ctx, bg.ID)
	if err != nil || !info.Running {
		t.Errorf("background process after session loss: %+v %v", info, err)
	}
	c2.KillBackground(ctx, bg.ID, 0)
}

func TestShutdown(t *testing.T) {
	done := make(chan struct{})
	_, dial := startServer(t, Config{ShutdownGrace: 500 * time.Millisecond, OnShutdown: func() { close(done) }})
	c := dial(t)
	ctx := context.Background()
	// One process ignores SIGTERM and needs the SIGKILL.
	p, err := c.Exec(ctx, agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"}})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := p.Stdout().Read(buf); err != nil {
		t.Fatal(err)
	}
	go p.Stdout().Read(make([]byte, 100))
	bg, err := c.StartBackground(ctx, agentproto.ExecRequest{Argv: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("OnShutdown not called")
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("shutdown took %v, less than the grace", d)
	}
	for _, pid := range []int{p.PID(), bg.PID} {
		if unix.Kill(pid, 0) == nil {
			t.Errorf("process %d survived shutdown", pid)
		}
	}
}

// BenchmarkExecTrueInProcess is BenchmarkExecTrue of cmd/agentkernel-agent
// without the process boundary, for profiling both sides at once.
func BenchmarkExecTrueInProcess(b *testing.B) {
	srv := New(Config{})
	defer srv.Close()
	host, guest := socketpair(b)
	go srv.ServeConn(context.Background(), guest)
	c, err := agentproto.NewClient(host)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		p, err := c.Exec(context.Background(), agentproto.ExecRequest{Argv: []string{"true"}})
		if err != nil {
			b.Fatal(err)
		}
		go io.Copy(io.Discard, p.Stderr())
		io.Copy(io.Discard, p.Stdout())
		if st, err := p.Wait(); err != nil || st.Code != 0 {
			b.Fatalf("%+v %v", st, err)
		}
		p.Close()
	}
}

// TestHostileHost: malformed streams from the host fail alone; the session
// keeps serving.
func TestHostileHost(t *testing.T) {
	srv := New(Config{})
	defer srv.Close()
	host, guest := socketpair(t)
	go srv.ServeConn(context.Background(), guest)
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	sess, err := yamux.Client(host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	streams := [][]byte{
		{byte(agentproto.FrameRequest), 0xff, 0xff, 0xff, 0xff}, // oversized
		{99, 0, 0, 0, 0}, // unknown type
		{byte(agentproto.FrameStdin), 0, 0, 0, 1, 'x'},             // not a request
		{byte(agentproto.FrameRequest), 0, 0, 0, 3, 'n', 'o', '!'}, // not JSON
		append([]byte{byte(agentproto.FrameRequest), 0, 0, 0, 14}, `{"op":"exec"}`+" "...),
	}
	for i, b := range streams {
		s, err := sess.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		s.Write(b)
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		f, err := agentproto.ReadFrame(s)
		if err == nil && f.Type != agentproto.FrameError {
			t.Errorf("stream %d: got a %s frame", i, f.Type)
		}
		s.Close()
	}
	s, _ := sess.OpenStream()
	agentproto.WriteJSON(s, agentproto.FrameRequest, agentproto.Request{Op: agentproto.OpPing})
	if f, err := agentproto.ReadFrame(s); err != nil || f.Type != agentproto.FrameResult {
		t.Errorf("ping after hostile streams: %v %v", f.Type, err)
	}
}

// flakyListener fails its first n accepts with err, as a listener does in a
// sandbox out of descriptors or memory.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	n    int
	err  error
	seen int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
		l.seen++
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestServeSurvivesAcceptErrors: after a fork bomb the agent's accept loop
// gave up on EMFILE/ENOMEM, and the sandbox looked running while every exec
// failed. Temporary errors are now retried with backoff; only a closed
// listener ends Serve.
func TestServeSurvivesAcceptErrors(t *testing.T) {
	for _, errno := range []error{unix.EMFILE, unix.ENFILE, unix.ENOMEM, unix.ENOBUFS} {
		sock := filepath.Join(t.TempDir(), "a.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		fl := &flakyListener{Listener: ln, n: 5, err: &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", errno)}}
		srv := New(Config{})
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ctx, fl) }()
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c, err := agentproto.NewClient(conn)
		if err != nil {
			t.Fatalf("%v: handshake after accept errors: %v", errno, err)
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := c.Ping(pctx); err != nil {
			t.Fatalf("%v: ping: %v", errno, err)
		}
		pcancel()
		fl.mu.Lock()
		seen := fl.seen
		fl.mu.Unlock()
		if seen != 5 {
			t.Fatalf("%v: %d failed accepts, want 5", errno, seen)
		}
		c.Close()
		cancel()
		if err := <-served; err != nil {
			t.Fatalf("%v: Serve after cancel: %v", errno, err)
		}
		srv.Close()
	}
}

// TestConfigure: configure sets the environment later execs start from and
// refuses malformed settings without applying any of them.
func TestConfigure(t *testing.T) {
	t.Setenv("AK_CLAIMED", "before")
	_, dial := startServer(t, Config{})
	c := dial(t)
	ctx := context.Background()
	if err := c.Configure(ctx, agentproto.Configure{Env: []string{"AK_CLAIMED=after", "AK_OTHER=x=y"}}); err != nil {
		t.Fatal(err)
	}
	r := agenttest.RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"sh", "-c", "echo $AK_CLAIMED $AK_OTHER"}}, "")
	if r.Stdout != "after x=y\n" {
		t.Errorf("exec after configure saw %q", r.Stdout)
	}
	for _, bad := range []agentproto.Configure{
		{Env: []string{"NOEQUALS"}}, {Env: []string{"=v"}}, {Env: []string{"AGENTKERNEL_X=1"}},
		{Hostname: "bad name"}, {Hostname: "-x"},
	} {
		// The agent's own check, past the client's, as a hostile host's
		// request would reach it.
		if err := configure(&bad); err == nil {
			t.Errorf("configure %+v accepted", bad)
		}
		if err := c.Configure(ctx, bad); err == nil {
			t.Errorf("client sent configure %+v", bad)
		}
	}
	if err := configure(nil); err == nil {
		t.Error("configure without settings accepted")
	}
	if os.Getenv("AK_CLAIMED") != "after" {
		t.Error("a refused configure changed the environment")
	}
}
