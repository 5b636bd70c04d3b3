package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TestRunStreamIsIncremental checks that SSE events reach the client while
// the command still runs: the "gate" command prints "first", then blocks
// until the test, having seen "first", opens the gate. A buffered stream
// would deadlock here and the test would time out.
func TestRunStreamIsIncremental(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	// Shorter than sseKeepalive, whose flush would hide a missing one.
	ctx, cancel := context.WithTimeout(context.Background(), sseKeepalive/2)
	defer cancel()
	var events []string
	err := e.client.RunStream(ctx, api.RunRequest{Command: []string{"gate"}}, func(ev string, data json.RawMessage) error {
		events = append(events, ev)
		if ev == api.EventOutput && strings.Contains(string(data), "first") {
			p := e.fake.lastProc()
			select {
			case <-p.done:
				t.Error("the process had already ended when the first output arrived")
			default:
			}
			close(e.fake.gate)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"started", "progress", "progress", "output", "output", "done"}
	if strings.Join(events, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", events, want)
	}
	waitFor(t, "the run sandbox to be removed", func() bool {
		list, _ := e.fake.ListSandboxes(ctx)
		return len(list) == 0
	})
}

func TestRunStreamKeepsUTF8Whole(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	var data []string
	err := e.client.RunStream(testCtx(t), api.RunRequest{Command: []string{"utf8"}}, func(ev string, raw json.RawMessage) error {
		if ev == api.EventOutput {
			var o api.OutputEvent
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			data = append(data, o.Data)
		}
		return nil
	})
	if err != nil || strings.Join(data, "") != "aéb" {
		t.Fatalf("%q %v", data, err)
	}
}

func TestRunStreamErrors(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	ctx := testCtx(t)
	// A bad request is a JSON error with its status, before any event.
	err := e.client.RunStream(ctx, api.RunRequest{Command: []string{"echo"}, VCPUs: -1}, func(string, json.RawMessage) error { return nil })
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("negative vcpus: %v", err)
	}
	// No command means the image's Entrypoint and Cmd; an image without
	// them makes the run fail.
	err = e.client.RunStream(ctx, api.RunRequest{}, func(string, json.RawMessage) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no command given") {
		t.Fatalf("empty command: %v", err)
	}
	// A failure once streaming is an "error" event.
	e.fake.createErr = fmt.Errorf("no capacity: %w", errdefs.ErrUnavailable)
	var last string
	err = e.client.RunStream(ctx, api.RunRequest{Command: []string{"echo"}}, func(ev string, data json.RawMessage) error {
		last = ev + " " + string(data)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "no capacity") || !strings.HasPrefix(last, "error ") || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("create failure: %v, last event %q", err, last)
	}
	// The error event keeps the class, as the JSON envelope does.
	if !strings.Contains(last, `"code":"unavailable"`) {
		t.Fatalf("the error event lost the error class: %q", last)
	}
}

// TestRunCleansUpWhenClientLeaves cancels /run and /run/stream requests
// whose command never ends, and checks that the process is killed and the
// ephemeral sandbox removed.
func TestRunCleansUpWhenClientLeaves(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			e := newEnv(t, HandlerOptions{})
			ctx, cancel := context.WithCancel(testCtx(t))
			errc := make(chan error, 1)
			go func() {
				req := api.RunRequest{Command: []string{"sleep"}}
				if stream {
					errc <- e.client.RunStream(ctx, req, func(string, json.RawMessage) error { return nil })
				} else {
					_, err := e.client.Run(ctx, req)
					errc <- err
				}
			}()
			waitFor(t, "the process to start", func() bool { return e.fake.lastProc() != nil })
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("client error: %v", err)
			}
			waitFor(t, "the process to be killed", func() bool { return e.fake.lastProc().wasKilled() })
			waitFor(t, "the sandbox to be removed", func() bool {
				e.fake.mu.Lock()
				defer e.fake.mu.Unlock()
				return len(e.fake.sandboxes) == 0 && len(e.fake.removed) == 1
			})
		})
	}
}

func TestExecWebSocket(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	ctx := testCtx(t)
	e.client.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "sb"})

	// stdin round trip, with separate stdout and stderr.
	s, err := e.client.ExecStream(ctx, "sb", api.ExecRequest{Command: []string{"cat"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.PID() != e.fake.lastProc().pid {
		t.Errorf("pid %d", s.PID())
	}
	big := strings.Repeat("0123456789", 20000) // several messages
	go func() {
		io.WriteString(s.Stdin(), big)
		s.Stdin().Close()
	}()
	var wg sync.WaitGroup
	var stdout, stderr []byte
	wg.Add(2)
	go func() { defer wg.Done(); stdout, _ = io.ReadAll(s.Stdout()) }()
	go func() { defer wg.Done(); stderr, _ = io.ReadAll(s.Stderr()) }()
	st, err := s.Wait()
	wg.Wait()
	s.Close()
	if err != nil || st.Type != "exit" || st.ExitCode != 0 || string(stdout) != big || len(stderr) != 0 {
		t.Fatalf("cat: %+v %v stdout %d bytes stderr %q", st, err, len(stdout), stderr)
	}

	s, err = e.client.ExecStream(ctx, "sb", api.ExecRequest{Command: []string{"both"}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(2)
	go func() { defer wg.Done(); stdout, _ = io.ReadAll(s.Stdout()) }()
	go func() { defer wg.Done(); stderr, _ = io.ReadAll(s.Stderr()) }()
	wg.Wait()
	st, err = s.Wait()
	s.Close()
	if err != nil || string(stdout) != "out\n" || string(stderr) != "err\n" {
		t.Fatalf("both: %q %q %+v %v", stdout, stderr, st, err)
	}

	s, err = e.client.ExecStream(ctx, "sb", api.ExecRequest{Command: []string{"exit", "7"}})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Wait(); err != nil || st.ExitCode != 7 {
		t.Fatalf("exit 7: %+v %v", st, err)
	}
	s.Close()

	// TTY: resize and signal reach the process; a signal death is 128+N.
	s, err = e.client.ExecStream(ctx, "sb", api.ExecRequest{Command: []string{"tty"}, TTY: true, Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(s.Stdout())
	expect := func(want string) {
		t.Helper()
		if !lines.Scan() || lines.Text() != want {
			t.Fatalf("got %q, want %q (%v)", lines.Text(), want, lines.Err())
		}
	}
	expect("tty=true rows=24 cols=80")
	if err := s.Resize(50, 132); err != nil {
		t.Fatal(err)
	}
	expect("resize 50 132")
	if err := s.Signal(int(syscall.SIGINT)); err != nil {
		t.Fatal(err)
	}
	expect("signal 2")
	if st, err := s.Wait(); err != nil || st.ExitCode != 130 || st.Signal != 2 {
		t.Fatalf("after SIGINT: %+v %v", st, err)
	}
	s.Close()

	// Closing the stream early kills the process.
	s, err = e.client.ExecStream(ctx, "sb", api.ExecRequest{Command: []string{"sleep"}})
	if err != nil {
		t.Fatal(err)
	}
	p := e.fake.lastProc()
	s.Close()
	waitFor(t, "the process to be killed", p.wasKilled)
	if _, err := s.Wait(); err == nil {
		t.Fatal("Wait after an early Close succeeded")
	}

	// Errors before the start come back classified.
	if _, err := e.client.ExecStream(ctx, "missing", api.ExecRequest{Command: []string{"echo"}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing sandbox: %v", err)
	}
	if _, err := e.client.ExecStream(ctx, "sb", api.ExecRequest{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("no command: %v", err)
	}
	if _, err := e.client.ExecStream(ctx, "bad name", api.ExecRequest{Command: []string{"echo"}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad name: %v", err)
	}
}

func TestAttachDefaults(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	ctx := testCtx(t)
	e.client.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "sb"})
	s, err := e.client.Attach(ctx, "sb", api.ExecRequest{})
	if err != nil {
		t.Fatal(err)
	}
	p := e.fake.lastProc()
	if strings.Join(p.opts.Argv, " ") != "/bin/sh -l" || !p.opts.TTY || !p.opts.Stdin {
		t.Fatalf("attach started %+v", p.opts)
	}
	st, err := s.Wait() // the fake has no /bin/sh: 127
	s.Close()
	if err != nil || st.ExitCode != 127 || !strings.Contains(st.Message, "not found") {
		t.Fatalf("%+v %v", st, err)
	}
}

// TestWebSocketRefusesCrossOrigin checks that a browser page from another
// origin cannot open a stream, and that a token is needed when set.
func TestWebSocketRefusesCrossOrigin(t *testing.T) {
	e := newEnv(t, HandlerOptions{Token: "tok"})
	ctx := testCtx(t)
	e.client.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "sb"})
	url := e.srv.URL + "/sandboxes/sb/exec/ws"
	auth := http.Header{"Authorization": {"Bearer tok"}}
	for _, tc := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"cross origin", http.Header{"Authorization": {"Bearer tok"}, "Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"no token", http.Header{}, http.StatusUnauthorized},
	} {
		c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: tc.header})
		if err == nil {
			c.CloseNow()
			t.Fatalf("%s: the upgrade succeeded", tc.name)
		}
		if resp == nil || resp.StatusCode != tc.want {
			t.Fatalf("%s: %v %v", tc.name, resp, err)
		}
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: auth})
	if err != nil {
		t.Fatalf("same origin with token: %v", err)
	}
	defer c.CloseNow()
	// A first message with an unknown field is refused by name.
	c.Write(ctx, websocket.MessageText, []byte(`{"command":["echo"],"colour":1}`))
	_, data, err := c.Read(ctx)
	var m api.StreamControl
	if err != nil || json.Unmarshal(data, &m) != nil || m.Type != "error" || !strings.Contains(m.Message, `unknown field "colour"`) {
		t.Fatalf("%s %v", data, err)
	}
}

// TestStreamsLeaveNoGoroutines runs streams that end in every way and
// checks that the server's and the client's goroutines are all gone after.
func TestStreamsLeaveNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		e := newEnv(t, HandlerOptions{})
		defer e.srv.Close()
		ctx := testCtx(t)
		e.client.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "sb"})
		for _, argv := range [][]string{{"echo", "x"}, {"sleep"}, {"cat"}, {"tty"}} {
			s, err := e.client.ExecStream(ctx, "sb", api.ExecRequest{Command: argv})
			if err != nil {
				t.Fatal(err)
			}
			if argv[0] == "echo" {
				io.ReadAll(s.Stdout())
				s.Wait()
			}
			s.Close() // early for the others: the server kills them
		}
		// A stream whose context ends.
		sctx, cancel := context.WithCancel(ctx)
		s, err := e.client.ExecStream(sctx, "sb", api.ExecRequest{Command: []string{"sleep"}})
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := s.Wait(); err == nil {
			t.Fatal("Wait succeeded after the context ended")
		}
		// And a run stream abandoned by its client.
		rctx, rcancel := context.WithCancel(ctx)
		go func() {
			for e.fake.procCount() < 6 {
				time.Sleep(5 * time.Millisecond)
			}
			rcancel()
		}()
		e.client.RunStream(rctx, api.RunRequest{Command: []string{"sleep"}}, func(string, json.RawMessage) error { return nil })
		waitFor(t, "every process to end", func() bool {
			e.fake.mu.Lock()
			defer e.fake.mu.Unlock()
			for _, p := range e.fake.procs {
				select {
				case <-p.done:
				default:
					return false
				}
			}
			return true
		})
	}()
	http.DefaultClient.CloseIdleConnections()
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}
