package opencodeproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// testEnv is a Proxy over a fake, served by an httptest server.
type testEnv struct {
	f   *fakeSandboxes
	p   *Proxy
	srv *httptest.Server
	log *bytes.Buffer
}

func newTestEnv(t testing.TB, h http.Handler, o Options) *testEnv {
	t.Helper()
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s %s", r.Method, r.URL.RequestURI()) })
	}
	e := &testEnv{f: newFake(t, h), log: &bytes.Buffer{}}
	o.Sandboxes = e.f
	o.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: e.log}, nil))
	if o.StartWait == 0 {
		o.StartWait = 10 * time.Second
	}
	e.p = New(o)
	e.srv = httptest.NewServer(e.p)
	t.Cleanup(func() {
		e.srv.Close()
		e.p.Close()
		if t.Failed() {
			t.Logf("proxy log:\n%s", e.log.String())
		}
	})
	return e
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (e *testEnv) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func envelope(t *testing.T, body string) api.Envelope {
	t.Helper()
	var env api.Envelope
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("not an envelope: %v: %q", err, body)
	}
	return env
}

func TestConcurrentFirstRequestsCreateOneSandbox(t *testing.T) {
	e := newTestEnv(t, nil, Options{})
	gate := make(chan struct{})
	e.f.createGate = gate
	const n = 20
	var wg sync.WaitGroup
	statuses := make([]int, n)
	sandboxes := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(e.srv.URL + fmt.Sprintf("/session/%d", i))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i], sandboxes[i] = resp.StatusCode, resp.Header.Get("X-Sandbox")
		}()
	}
	time.Sleep(200 * time.Millisecond) // let them all arrive while the create is held
	close(gate)
	wg.Wait()
	for i := range n {
		if statuses[i] != 200 || sandboxes[i] != "1" {
			t.Errorf("request %d: %d from sandbox %q", i, statuses[i], sandboxes[i])
		}
	}
	if c, _ := e.f.counts(); c != 1 {
		t.Errorf("%d sandboxes created, want 1", c)
	}
	// The create asked for what an OpenCode sandbox needs.
	req := e.f.lastCreate
	if req.Name != SandboxName || req.Image != "agentkernel/opencode" || req.MemoryMB != 2048 || req.VCPUs != 2 ||
		req.Labels["agentkernel.agent"] != "opencode" || !slices.Equal(req.Publish, []string{"0:3000"}) ||
		req.Network == nil || !slices.Equal(req.Network.Presets, []string{"opencode"}) ||
		!slices.Equal(req.Secrets, []string{"ANTHROPIC_API_KEY:api.anthropic.com:x-api-key"}) {
		t.Errorf("create request %+v", req)
	}
	x := e.f.lastExec
	if !slices.Equal(x.Argv, []string{"opencode", "serve", "--port", "3000", "--hostname", "0.0.0.0"}) || len(x.Env) != 2 {
		t.Errorf("exec %+v", x)
	}
}

func TestStartingAnswers503WithRetryAfter(t *testing.T) {
	e := newTestEnv(t, nil, Options{StartWait: 50 * time.Millisecond})
	gate := make(chan struct{})
	e.f.createGate = gate
	start := time.Now()
	resp, body := e.get(t, "/x")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" || !strings.Contains(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("while starting: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if env := envelope(t, body); env.Success || env.Code != "unavailable" || !strings.Contains(env.Error, "starting") {
		t.Errorf("envelope %+v", env)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the 503 took %v", d)
	}
	// A second request joins the same provisioning.
	if resp, _ := e.get(t, "/y"); resp.StatusCode != 503 {
		t.Errorf("second request while starting: %d", resp.StatusCode)
	}
	close(gate)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := e.get(t, "/x")
		if resp.StatusCode == 200 {
			if body != "GET /x" {
				t.Errorf("body %q", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %d %s", resp.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c, _ := e.f.counts(); c != 1 {
		t.Errorf("%d sandboxes created, want 1", c)
	}
	if !strings.Contains(e.log.String(), "creating its sandbox") || !strings.Contains(e.log.String(), "ready") {
		t.Errorf("the log does not tell the progress:\n%s", e.log.String())
	}
}

// TestStreamsUnbuffered: each event (SSE, or any chunked answer) reaches
// the client before the upstream writes the next.
func TestStreamsUnbuffered(t *testing.T) {
	for _, ct := range []string{"text/event-stream", "application/x-ndjson"} {
		t.Run(ct, func(t *testing.T) { testStreamUnbuffered(t, ct) })
	}
}

func testStreamUnbuffered(t *testing.T, ct string) {
	next := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(200)
		for i := range 3 {
			fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Second):
				return
			}
		}
	})
	e := newTestEnv(t, h, Options{})
	resp, err := http.Get(e.srv.URL + "/event")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Content-Type"); got != ct {
		t.Errorf("Content-Type %q", got)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if sc.Text() != "" {
				lines <- sc.Text()
			}
		}
		close(lines)
	}()
	for i := range 3 {
		select {
		case l := <-lines:
			if want := fmt.Sprintf("data: {\"n\":%d}", i); l != want {
				t.Fatalf("event %d: %q, want %q", i, l, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("event %d did not arrive before the next was written: the proxy buffers", i)
		}
		next <- struct{}{}
	}
}

// TestPassThrough: method, path, query, headers and a binary body reach
// the server unchanged, but not the client's credentials; the answer's
// content type and body come back unchanged, without CORS headers.
func TestPassThrough(t *testing.T) {
	answer := []byte("\x00\xffnot json at all\r\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sum := fmt.Sprintf("%s %s|ct=%s|x=%s|auth=%t|key=%s|len=%d", r.Method, r.URL.RequestURI(), r.Header.Get("Content-Type"),
			r.Header.Get("X-Custom"), r.Header.Get("Authorization") != "", r.Header.Get("X-Api-Key"), len(body))
		w.Header().Set("X-Summary", sum)
		w.Header().Set("X-Body", fmt.Sprintf("%x", body[:min(len(body), 64)]))
		w.Header().Set("Content-Type", "application/x-weird; charset=latin1")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.WriteHeader(207)
		w.Write(answer)
		w.Write(body)
	})
	e := newTestEnv(t, h, Options{})
	body := make([]byte, 1<<20)
	rand.Read(body)
	req, _ := http.NewRequest("PATCH", e.srv.URL+"/session/a%2Fb/x?directory=%2Fwork&x=1&x=2", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-custom")
	req.Header.Set("X-Custom", "kept")
	req.Header.Set("Authorization", "Bearer daemon-token")
	req.Header.Set("X-API-Key", "daemon-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	// The server sees its own password (checked by the fake), never the
	// daemon's token.
	want := "PATCH /session/a%2Fb/x?directory=%2Fwork&x=1&x=2|ct=application/x-custom|x=kept|auth=true|key=|len=1048576"
	if s := resp.Header.Get("X-Summary"); s != want {
		t.Errorf("the server saw %q, want %q", s, want)
	}
	if resp.StatusCode != 207 || resp.Header.Get("Content-Type") != "application/x-weird; charset=latin1" {
		t.Errorf("answer %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(got, append(append([]byte(nil), answer...), body...)) {
		t.Errorf("the bodies did not pass byte for byte (%d bytes back)", len(got))
	}
	for k := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("CORS header passed: %s: %s", k, resp.Header.Get(k))
		}
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	arrived, cancelled := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		close(arrived)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(20 * time.Second):
		}
	})
	e := newTestEnv(t, h, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/event", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-arrived
	cancel()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not cancelled when the client went away")
	}
}

func TestRemovedSandboxIsReplaced(t *testing.T) {
	e := newTestEnv(t, nil, Options{})
	if resp, body := e.get(t, "/a"); resp.StatusCode != 200 || resp.Header.Get("X-Sandbox") != "1" {
		t.Fatalf("first: %d %s", resp.StatusCode, body)
	}
	e.f.RemoveSandbox(context.Background(), SandboxName) // agentkernel sandbox remove opencode-attach
	if resp, body := e.get(t, "/a"); resp.StatusCode != 200 || resp.Header.Get("X-Sandbox") != "2" {
		t.Fatalf("after removal: %d %q %s", resp.StatusCode, resp.Header.Get("X-Sandbox"), body)
	}
	if c, r := e.f.counts(); c != 2 || r != 1 {
		t.Errorf("creates %d removes %d", c, r)
	}
}

func TestDeadSandboxIsReplaced(t *testing.T) {
	e := newTestEnv(t, nil, Options{})
	if resp, _ := e.get(t, "/a"); resp.StatusCode != 200 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	e.f.fail()
	if resp, body := e.get(t, "/a"); resp.StatusCode != 200 || resp.Header.Get("X-Sandbox") != "2" {
		t.Fatalf("after its death: %d %q %s", resp.StatusCode, resp.Header.Get("X-Sandbox"), body)
	}
	if c, r := e.f.counts(); c != 2 || r != 1 { // the failed one was removed first
		t.Errorf("creates %d removes %d", c, r)
	}
}

// TestCrashedServerIsReplaced: the sandbox runs but its server is gone;
// the failed request says it is starting anew, and the next one reaches a
// new sandbox.
func TestCrashedServerIsReplaced(t *testing.T) {
	e := newTestEnv(t, nil, Options{})
	if resp, _ := e.get(t, "/a"); resp.StatusCode != 200 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	e.f.crash()
	resp, body := e.get(t, "/a")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("the request that found the server gone: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	if !waitFor(10*time.Second, func() bool {
		resp, _ := e.get(t, "/a")
		return resp.StatusCode == 200 && resp.Header.Get("X-Sandbox") == "2"
	}) {
		t.Fatal("no new sandbox")
	}
	if c, r := e.f.counts(); c != 2 || r != 1 {
		t.Errorf("creates %d removes %d", c, r)
	}
}

func TestTeardown(t *testing.T) {
	e := newTestEnv(t, nil, Options{})
	if resp, _ := e.get(t, "/a"); resp.StatusCode != 200 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	if err := e.p.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.GetSandbox(context.Background(), SandboxName); err == nil {
		t.Fatal("the sandbox is still there")
	}
	if err := e.p.Teardown(context.Background()); err != nil {
		t.Fatalf("a second teardown: %v", err)
	}
	// A later request provisions again.
	if resp, _ := e.get(t, "/a"); resp.StatusCode != 200 || resp.Header.Get("X-Sandbox") != "2" {
		t.Fatalf("after teardown: %d %q", resp.StatusCode, resp.Header.Get("X-Sandbox"))
	}
}

// TestTeardownWhileStarting cancels the provisioning, which leaves no
// sandbox behind.
func TestTeardownWhileStarting(t *testing.T) {
	e := newTestEnv(t, nil, Options{StartWait: -1})
	e.f.createGate = make(chan struct{}) // never opens
	if resp, _ := e.get(t, "/a"); resp.StatusCode != 503 {
		t.Fatalf("while starting: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.p.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.f.counts(); c != 0 {
		t.Errorf("%d sandboxes created", c)
	}
}

func TestPreconditions(t *testing.T) {
	for _, c := range []struct {
		name    string
		setup   func(f *fakeSandboxes)
		status  int
		wantMsg string
	}{
		{"no image", func(f *fakeSandboxes) { f.images = nil }, 503, "agentkernel setup --agents opencode"},
		{"no key", func(f *fakeSandboxes) { f.secrets = []string{"OTHER"} }, 503, "agentkernel secret set ANTHROPIC_API_KEY"},
		{"not ours", func(f *fakeSandboxes) { f.add(map[string]string{"agentkernel.agent": "opencode"}) }, 409, "did not create"},
		{"server exits", func(f *fakeSandboxes) { f.exitAtStart = "Error: cannot bind port 3000" }, 503, "cannot bind port 3000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTestEnv(t, nil, Options{})
			c.setup(e.f)
			resp, body := e.get(t, "/a")
			if resp.StatusCode != c.status || resp.Header.Get("Retry-After") != "" || !strings.Contains(envelope(t, body).Error, c.wantMsg) {
				t.Fatalf("%d %v %s; want %d with %q", resp.StatusCode, resp.Header, body, c.status, c.wantMsg)
			}
			creates, removes := e.f.counts()
			if c.name == "server exits" {
				if creates != 1 || removes != 1 {
					t.Errorf("creates %d removes %d: the sandbox that did not come up must go", creates, removes)
				}
			} else if creates != 0 || removes != 0 {
				t.Errorf("creates %d removes %d", creates, removes)
			}
			// A retry at once gets the same answer without a new attempt.
			if resp, _ := e.get(t, "/a"); resp.StatusCode != c.status {
				t.Errorf("retry: %d", resp.StatusCode)
			}
			if c2, _ := e.f.counts(); c2 != creates {
				t.Errorf("the retry within %v provisioned again", failedFor)
			}
		})
	}
}

// TestReadopt: a restarted daemon (a new Proxy with the same secret)
// adopts the running sandbox; with another secret it cannot speak to its
// server, so it replaces it.
func TestReadopt(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	e := newTestEnv(t, nil, Options{Secret: secret})
	if resp, _ := e.get(t, "/a"); resp.StatusCode != 200 {
		t.Fatalf("first: %d", resp.StatusCode)
	}
	p2 := New(Options{Sandboxes: e.f, Secret: secret})
	defer p2.Close()
	srv2 := httptest.NewServer(p2)
	defer srv2.Close()
	resp, err := http.Get(srv2.URL + "/a")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Sandbox") != "1" {
		t.Fatalf("re-adopted: %d %q", resp.StatusCode, resp.Header.Get("X-Sandbox"))
	}
	p3 := New(Options{Sandboxes: e.f, Secret: []byte("another secret")})
	defer p3.Close()
	srv3 := httptest.NewServer(p3)
	defer srv3.Close()
	if resp, err = http.Get(srv3.URL + "/a"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Sandbox") != "2" {
		t.Fatalf("with another secret: %d %q", resp.StatusCode, resp.Header.Get("X-Sandbox"))
	}
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// TestUpgrade: a protocol upgrade (OpenCode's PTY WebSockets) passes
// through, both ways.
func TestUpgrade(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		conn.Write([]byte("echo " + line))
	})
	e := newTestEnv(t, h, Options{})
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /pty/1/connect HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprintf(conn, "ping\n")
	if l, err := br.ReadString('\n'); l != "echo ping\n" {
		t.Fatalf("through the upgraded connection: %q %v", l, err)
	}
}

// TestFullDuplex: the request body keeps flowing while the answer
// streams: each line sent comes back before the next is written.
func TestFullDuplex(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		br := bufio.NewReader(r.Body)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(w, "got "+l)
			w.(http.Flusher).Flush()
		}
	})
	e := newTestEnv(t, h, Options{})
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", e.srv.URL+"/duplex", pr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		for i := range 3 {
			fmt.Fprintf(pw, "line %d\n", i)
			if l, err := br.ReadString('\n'); l != fmt.Sprintf("got line %d\n", i) {
				done <- fmt.Errorf("line %d: %q %v", i, l, err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		pw.CloseWithError(io.ErrUnexpectedEOF)
		e.srv.CloseClientConnections() // so that the cleanup does not wait for the stuck request
		t.Fatal("the lines did not come back while the request was open")
	}
}
