package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/client"
)

// lockedBuffer collects log output; it outlives the test safely (handlers
// of hijacked connections may log after the test returns).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is a handler over a fake service, served by httptest, with a
// client pointed at it.
type testEnv struct {
	fake   *fakeService
	srv    *httptest.Server
	client *client.Client
	logs   *lockedBuffer
	// patterns records the route pattern of every request served.
	mu       sync.Mutex
	patterns map[string]bool
}

func newEnv(t *testing.T, opts HandlerOptions, copts ...client.Option) *testEnv {
	t.Helper()
	f := newFake()
	return newEnvWith(t, f, opts, copts...)
}

// newEnvWith is newEnv serving svc, which wraps the returned env's fake
// (or is it).
func newEnvWith(t *testing.T, svc Service, opts HandlerOptions, copts ...client.Option) *testEnv {
	t.Helper()
	e := &testEnv{logs: &lockedBuffer{}, patterns: map[string]bool{}}
	switch v := svc.(type) {
	case *fakeService:
		e.fake = v
	case *recordingService:
		e.fake = v.fakeService
	}
	opts.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := NewHandler(svc, opts)
	s := h.(*server)
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pat := s.first.Handler(r)
		if pat == "" {
			_, pat = s.mux.Handler(r)
		}
		e.mu.Lock()
		e.patterns[pat] = true
		e.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		e.srv.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	c, err := client.New(append([]client.Option{client.WithBaseURL(e.srv.URL), client.WithToken(opts.Token)}, copts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	return e
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// do sends a raw request to the test server and returns the response
// (body read into the second value).
func (e *testEnv) do(t *testing.T, method, path string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return resp, b.Bytes()
}

var jsonHeader = map[string]string{"Content-Type": "application/json"}

// waitFor polls cond until it holds or the test's patience runs out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
