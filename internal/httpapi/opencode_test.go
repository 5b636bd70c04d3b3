package httpapi

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeOpenCode records what reaches the proxy and answers with it; /event
// streams three events, one per tick of next.
type fakeOpenCode struct {
	mu        sync.Mutex
	teardowns int
	next      chan struct{}
}

func (f *fakeOpenCode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/event" {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			http.NewResponseController(w).Flush()
			if f.next != nil {
				select {
				case <-f.next:
				case <-r.Context().Done():
					return
				}
			}
		}
		return
	}
	w.Header().Set("X-Got", r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery)
	w.Header().Set("X-Auth", r.Header.Get("Authorization"))
	io.WriteString(w, "proxied")
}

func (f *fakeOpenCode) Teardown(ctx context.Context) error {
	f.mu.Lock()
	f.teardowns++
	f.mu.Unlock()
	return nil
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// exerciseOpenCodeRoutes drives the three /opencode routes through e,
// whose token is tok.
func exerciseOpenCodeRoutes(t *testing.T, e *testEnv, tok string) {
	t.Helper()
	auth := map[string]string{"Authorization": "Bearer " + tok}
	for path, want := range map[string]string{
		"/opencode":                     "GET /?",
		"/opencode/":                    "GET /?",
		"/opencode/session/a%2Fb?x=1&y": "GET /session/a%2Fb?x=1&y",
	} {
		resp, body := e.do(t, "GET", path, nil, auth)
		if resp.StatusCode != 200 || string(body) != "proxied" || resp.Header.Get("X-Got") != want {
			t.Errorf("GET %s: %d %q %q, want %q", path, resp.StatusCode, resp.Header.Get("X-Got"), body, want)
		}
	}
	resp, body := e.do(t, "DELETE", "/opencode", nil, auth)
	if env := envelopeOf(t, body); resp.StatusCode != 200 || !env.Success {
		t.Errorf("DELETE /opencode: %d %s", resp.StatusCode, body)
	}
	// Below /opencode, DELETE is OpenCode's.
	if resp, _ := e.do(t, "DELETE", "/opencode/session/1", nil, auth); resp.Header.Get("X-Got") != "DELETE /session/1?" {
		t.Errorf("DELETE /opencode/session/1: %d %q", resp.StatusCode, resp.Header.Get("X-Got"))
	}
}

func TestOpenCodeAuth(t *testing.T) {
	f := &fakeOpenCode{}
	e := newEnv(t, HandlerOptions{Token: "tok-123", OpenCode: f})
	for _, c := range []struct {
		method, path, auth string
		want               int
	}{
		{"GET", "/opencode/global/health", "", 401},
		{"GET", "/opencode", "", 401},
		{"POST", "/opencode/session", basic("opencode", "wrong"), 401},
		{"GET", "/opencode/x", basic("opencode", "tok-12"), 401},
		{"GET", "/opencode/x", "Basic !!!not-base64", 401},
		{"GET", "/opencode/x", "Basic " + "tok-123", 401},
		{"GET", "/opencode/x", basic("opencode", "tok-123"), 200},
		// OPENCODE_SERVER_USERNAME may name another user.
		{"GET", "/opencode/x", basic("someone", "tok-123"), 200},
		{"PUT", "/opencode/x", "Bearer tok-123", 200},
		{"DELETE", "/opencode", basic("opencode", "tok-123"), 200},
		// Basic auth is for /opencode only.
		{"GET", "/sandboxes", basic("opencode", "tok-123"), 401},
		{"GET", "/opencodex", basic("opencode", "tok-123"), 401},
		{"GET", "/opencode%2F..%2Fsandboxes", basic("opencode", "tok-123"), 400},
		{"GET", "/opencode%2Fsandboxes", basic("opencode", "tok-123"), 401},
		{"GET", "/%6Fpencode/x", basic("opencode", "tok-123"), 200},
	} {
		h := map[string]string{"Origin": "http://evil.example"}
		if c.auth != "" {
			h["Authorization"] = c.auth
		}
		resp, body := e.do(t, c.method, c.path, nil, h)
		if resp.StatusCode != c.want {
			t.Errorf("%s %s with %q: %d, want %d: %s", c.method, c.path, c.auth, resp.StatusCode, c.want, body)
		}
		if c.want == 401 && (c.path == "/opencode" || strings.HasPrefix(c.path, "/opencode/")) && !strings.Contains(string(body), "opencode attach --password") {
			t.Errorf("%s %s: the 401 does not say how to attach: %s", c.method, c.path, body)
		}
		if resp.StatusCode == 200 && c.method != "DELETE" && resp.Header.Get("X-Auth") != c.auth {
			t.Errorf("the handler changed Authorization before the proxy: %q", resp.Header.Get("X-Auth"))
		}
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s %s: %s", c.method, c.path, k)
			}
		}
	}
	if f.teardowns != 1 {
		t.Errorf("%d teardowns", f.teardowns)
	}
}

// TestOpenCodeStreamsThroughTheHandler: the handler's wrappers pass each
// flush on.
func TestOpenCodeStreamsThroughTheHandler(t *testing.T) {
	f := &fakeOpenCode{next: make(chan struct{})}
	e := newEnv(t, HandlerOptions{OpenCode: f})
	resp, err := http.Get(e.srv.URL + "/opencode/event")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for i := range 3 {
		got := make(chan string, 1)
		go func() {
			l, _ := rd.ReadString('\n')
			rd.ReadString('\n')
			got <- l
		}()
		select {
		case l := <-got:
			if l != fmt.Sprintf("data: %d\n", i) {
				t.Fatalf("event %d: %q", i, l)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d was held back", i)
		}
		if i < 2 {
			f.next <- struct{}{}
		}
	}
	close(f.next)
}

func TestOpenCodeWithoutProxy(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	for _, m := range []string{"GET", "DELETE"} {
		if resp, body := e.do(t, m, "/opencode", nil, nil); resp.StatusCode != 501 || envelopeOf(t, body).Code != "not_implemented" {
			t.Errorf("%s /opencode without a proxy: %d %s", m, resp.StatusCode, body)
		}
	}
}

// mcpStandIn stands for internal/mcp.HTTPHandler (tested there and in
// test/integration): it answers which method reached it.
var mcpStandIn = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Got", r.Method+" "+r.URL.Path)
})

// exerciseMCPRoute: /mcp takes every method to the MCP handler, with the
// token; without it, 401.
func exerciseMCPRoute(t *testing.T, e *testEnv, tok string) {
	t.Helper()
	auth := map[string]string{"Authorization": "Bearer " + tok}
	for _, m := range []string{"POST", "GET", "DELETE"} {
		if resp, _ := e.do(t, m, "/mcp", nil, auth); resp.Header.Get("X-Got") != m+" /mcp" {
			t.Errorf("%s /mcp: %d %q", m, resp.StatusCode, resp.Header.Get("X-Got"))
		}
	}
	if resp, _ := e.do(t, "POST", "/mcp", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /mcp without the token: %d", resp.StatusCode)
	}
}
