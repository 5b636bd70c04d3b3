package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// These tests run the client against small real HTTP servers. The full
// round trip against the real handler is in internal/httpapi's tests.

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewOptions(t *testing.T) {
	t.Setenv("AGENTKERNEL_BASE_URL", "http://10.0.0.1:1234/")
	t.Setenv("AGENTKERNEL_API_KEY", "from-env")
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if c.base != "http://10.0.0.1:1234" || c.token != "from-env" || c.ua != DefaultUserAgent {
		t.Fatalf("env defaults: %+v", c)
	}
	c, err = New(WithBaseURL("https://h/pre%20fix/"), WithToken("opt"), WithUserAgent("ua/1"))
	if err != nil {
		t.Fatal(err)
	}
	if c.base != "https://h/pre%20fix" || c.token != "opt" || c.ua != "ua/1" {
		t.Fatalf("options: %+v", c)
	}
	t.Setenv("AGENTKERNEL_BASE_URL", "")
	if c, _ := New(); c.base != DefaultBaseURL {
		t.Fatalf("default base %q", c.base)
	}
	for _, bad := range []string{"ftp://h", "http://", "unix://relative.sock", "unix:rel", "http://h/?q=1", "http://user:pw@h", "://"} {
		if _, err := New(WithBaseURL(bad)); err == nil {
			t.Errorf("accepted base URL %q", bad)
		}
	}
	if _, err := New(WithToken("a\nb")); err == nil {
		t.Error("accepted a token with a newline")
	}
	custom := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("x") })}
	if _, err := New(WithBaseURL("unix:///tmp/x.sock"), WithHTTPClient(custom)); err == nil {
		t.Error("accepted a unix URL with a custom RoundTripper")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// recorder is a server that answers every request with a fixed envelope
// and records what it received.
type recorder struct {
	mu      sync.Mutex
	uris    []string
	headers []http.Header
	bodies  []string
}

func (rec *recorder) serve(t *testing.T, answer string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.uris = append(rec.uris, r.Method+" "+r.RequestURI)
		rec.headers = append(rec.headers, r.Header.Clone())
		rec.bodies = append(rec.bodies, string(b))
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRequestPathsAreEscaped(t *testing.T) {
	rec := &recorder{}
	srv := rec.serve(t, `{"success":true,"data":null}`)
	c, err := New(WithBaseURL(srv.URL+"/prefix"), WithToken("tok"), WithUserAgent("test-ua"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	c.RemoveImage(ctx, "docker.io/library/alpine:3.20")
	c.GetSandbox(ctx, "a/b")
	c.ReadFile(ctx, "sb", "/a b/c?d#e")
	c.ListDir(ctx, "sb", "tmp")
	c.DeleteFile(ctx, "sb", "/x", true)
	c.Mkdir(ctx, "sb", "/d")
	c.WriteFile(ctx, "sb", "/f", strings.NewReader("data"), 0o4755)
	c.TarOut(ctx, "sb", "/dir with space")
	c.GetDetached(ctx, "sb", "id/1")
	c.GetSandboxByUUID(ctx, "u-1")
	want := []string{
		"DELETE /prefix/images/docker.io%2Flibrary%2Falpine:3.20",
		"GET /prefix/sandboxes/a%2Fb",
		"GET /prefix/sandboxes/sb/files/a%20b/c%3Fd%23e",
		"GET /prefix/sandboxes/sb/files/tmp?list=1",
		"DELETE /prefix/sandboxes/sb/files/x?recursive=1",
		"PUT /prefix/sandboxes/sb/files/d?dir=1",
		"PUT /prefix/sandboxes/sb/files/f?mode=04755",
		"GET /prefix/sandboxes/sb/archive?path=%2Fdir+with+space",
		"GET /prefix/sandboxes/sb/exec/detached/id%2F1",
		"GET /prefix/sandboxes/by-uuid/u-1",
	}
	if strings.Join(rec.uris, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(rec.uris, "\n"), strings.Join(want, "\n"))
	}
	for _, h := range rec.headers {
		if h.Get("Authorization") != "Bearer tok" || h.Get("User-Agent") != "test-ua" {
			t.Fatalf("headers %v", h)
		}
	}
	if rec.headers[2].Get("Accept") != "application/octet-stream" || rec.headers[6].Get("Content-Type") != "application/octet-stream" || rec.bodies[6] != "data" {
		t.Fatalf("raw file headers: %v %v %q", rec.headers[2], rec.headers[6], rec.bodies[6])
	}
	if _, err := c.GetSandbox(ctx, ""); err == nil {
		t.Fatal("accepted an empty name")
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		body    string
		class   error
		message string
	}{
		{"envelope with code", 404, `{"success":false,"error":"sandbox \"x\" not found","code":"not_found"}`, errdefs.ErrNotFound, `sandbox "x" not found`},
		{"code wins over status", 400, `{"success":false,"error":"busy","code":"unavailable"}`, errdefs.ErrUnavailable, "busy"},
		{"upstream envelope without code", 409, `{"success":false,"error":"exists"}`, errdefs.ErrAlreadyExists, "exists"},
		{"plain text", 502, "upstream down", nil, "502 Bad Gateway: upstream down"},
		{"success false with 200", 200, `{"success":false,"error":"nope","code":"permission_denied"}`, errdefs.ErrPermissionDenied, "nope"},
		{"unknown code", 500, `{"success":false,"error":"boom","code":"internal"}`, nil, "boom"},
		{"redirect is not followed", 302, "", nil, "302 Found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.status == 302 {
					w.Header().Set("Location", "http://example.invalid/")
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c, _ := New(WithBaseURL(srv.URL), WithToken("secret-token"))
			_, err := c.ListSandboxes(ctxT(t))
			var remote *errdefs.Remote
			if !errors.As(err, &remote) || remote.Class != tc.class || remote.Message != tc.message {
				t.Fatalf("got %#v", err)
			}
			if tc.class != nil && !errors.Is(err, tc.class) {
				t.Fatalf("errors.Is failed for %v", err)
			}
		})
	}
	// A transport error names the request, never the token.
	c, _ := New(WithBaseURL("http://127.0.0.1:1"), WithToken("secret-token"))
	_, err := c.ListSandboxes(ctxT(t))
	if err == nil || strings.Contains(err.Error(), "secret-token") || !strings.Contains(err.Error(), "/sandboxes") {
		t.Fatalf("transport error: %v", err)
	}
}

func TestWriteFileLeavesCallerFileOpen(t *testing.T) {
	rec := &recorder{}
	srv := rec.serve(t, `{"success":true,"data":"ok"}`)
	c, _ := New(WithBaseURL(srv.URL))
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("content")
	f.Seek(0, 0)
	if err := c.WriteFile(ctxT(t), "sb", "/f", f, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatalf("the caller's file was closed: %v", err)
	}
	if rec.bodies[0] != "content" {
		t.Fatalf("body %q", rec.bodies[0])
	}
}

func TestReadSSE(t *testing.T) {
	in := ": comment\r\nevent: started\r\ndata: {\"sandbox\":\"s\"}\r\n\r\n" +
		"event: output\ndata: line1\ndata: line2\n\n" +
		"event: ignored-without-data\n\n" +
		"data: plain\nid: 7\nretry: 10\n\n" +
		"event: done\ndata:{\"exit_code\":0}\n\n" +
		"event: cr\rdata: only\r\r" +
		"event: trailing-without-blank-line\ndata: x"
	var got []string
	if err := readSSE(strings.NewReader(in), func(ev string, data []byte) error {
		got = append(got, ev+"="+string(data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{`started={"sandbox":"s"}`, "output=line1\nline2", "message=plain", `done={"exit_code":0}`, "cr=only"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q", got)
	}
	long := "data: " + strings.Repeat("a", maxSSELine) + "\n\n"
	if err := readSSE(strings.NewReader(long), func(string, []byte) error { return nil }); err == nil {
		t.Fatal("accepted an oversized line")
	}
	many := strings.Repeat("data: "+strings.Repeat("a", 1000)+"\n", maxSSEEvent/1000+2)
	if err := readSSE(strings.NewReader(many), func(string, []byte) error { return nil }); err == nil {
		t.Fatal("accepted an oversized event")
	}
}

func TestRunStreamEndings(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		check      func(error) bool
	}{
		{"done", "event: started\ndata: {}\n\nevent: done\ndata: {\"exit_code\":1,\"success\":false}\n\n", func(err error) bool { return err == nil }},
		{"error", "event: error\ndata: {\"message\":\"boom\"}\n\n", func(err error) bool { return err != nil && err.Error() == "boom" }},
		{"cut short", "event: started\ndata: {}\n\n", func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c, _ := New(WithBaseURL(srv.URL))
			err := c.RunStream(ctxT(t), api.RunRequest{Command: []string{"x"}}, func(string, json.RawMessage) error { return nil })
			if !tc.check(err) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func FuzzReadSSE(f *testing.F) {
	f.Add([]byte("event: a\ndata: b\n\n"))
	f.Add([]byte(": c\r\n\r\ndata:\ndata\n\n"))
	f.Add([]byte("event\n\nevent:\x00\ndata: \xff\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		_ = readSSE(bytes.NewReader(in), func(ev string, data []byte) error {
			if ev == "" || strings.ContainsAny(ev, "\r\n") || len(data) > maxSSEEvent {
				t.Fatalf("event %q with %d bytes", ev, len(data))
			}
			return nil
		})
	})
}

func TestOutBufferIsBounded(t *testing.T) {
	b := newOutBuffer()
	b.write(make([]byte, StreamBufferSize))
	wrote := make(chan struct{})
	go func() { b.write([]byte("more")); close(wrote) }()
	select {
	case <-wrote:
		t.Fatal("a write into a full buffer did not wait")
	case <-time.After(50 * time.Millisecond):
	}
	if n, err := b.Read(make([]byte, 1024)); n != 1024 || err != nil {
		t.Fatal(n, err)
	}
	<-wrote
	b.closeWrite(io.EOF)
	rest, err := io.ReadAll(b)
	if err != nil || len(rest) != StreamBufferSize-1024+4 || string(rest[len(rest)-4:]) != "more" {
		t.Fatalf("rest %d %v", len(rest), err)
	}

	// abort unblocks a waiting writer and a waiting reader.
	b = newOutBuffer()
	b.write(make([]byte, StreamBufferSize))
	done := make(chan struct{})
	go func() { b.write([]byte("x")); close(done) }()
	b2 := newOutBuffer()
	readErr := make(chan error, 1)
	go func() { _, err := b2.Read(make([]byte, 1)); readErr <- err }()
	time.Sleep(10 * time.Millisecond)
	b.abort()
	b2.abort()
	<-done
	if err := <-readErr; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("reader after abort: %v", err)
	}
}

func TestUnixMode(t *testing.T) {
	for mode, want := range map[os.FileMode]uint32{0: 0, 0o644: 0o644, 0o4755: 0o4755, os.ModeSetuid | os.ModeSticky | 0o700: 0o5700, os.ModeDir | 0o755: 0o755} {
		if got := unixMode(mode); got != want {
			t.Errorf("unixMode(%v) = %o, want %o", mode, got, want)
		}
	}
}

// TestDaemonLost: a daemon that dies after it took a request (here: it
// closes the connection without answering) is reported as ErrDaemonLost,
// naming the request, not as the transport's "EOF"; a daemon that is not
// there at all is not.
func TestDaemonLost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	defer srv.Close()
	c, _ := New(WithBaseURL(srv.URL))
	_, err := c.CreateSandbox(ctxT(t), api.CreateSandboxRequest{Name: "dev"})
	if !errors.Is(err, ErrDaemonLost) || !strings.Contains(err.Error(), "POST /sandboxes") || strings.Contains(err.Error(), "EOF") {
		t.Fatalf("a request cut by the daemon's death: %v", err)
	}
	c, _ = New(WithBaseURL("http://127.0.0.1:1"))
	if _, err := c.ListSandboxes(ctxT(t)); err == nil || errors.Is(err, ErrDaemonLost) {
		t.Fatalf("no daemon at all: %v", err)
	}
}
