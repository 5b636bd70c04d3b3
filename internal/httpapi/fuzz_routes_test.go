package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// jsonRoutes are the routes that decode a JSON body, streaming ones
// excepted (their handlers hold the connection open by design).
func jsonRoutes() []route {
	var out []route
	for _, rt := range routes {
		if rt.req != nil && rt.stream == "" && rt.method != "" {
			out = append(out, rt)
		}
	}
	return out
}

// FuzzRouteBodies sends arbitrary bodies to every route that decodes a JSON
// body (issue 16: every HTTP request decoder), on the real handler over
// the in-memory fake service: whatever the body, the answer is a client
// error or a success, never a panic or a 500, and always the envelope.
func FuzzRouteBodies(f *testing.F) {
	rts := jsonRoutes()
	if len(rts) < 10 {
		f.Fatalf("only %d JSON routes found", len(rts))
	}
	for i := range rts {
		for _, s := range []string{`{}`, `{"name":"fz","command":["echo","hi"]}`, `{"command":["sh","-c","exit 3"],"timeout":"1s"}`,
			`{"name":"fz","image":"x","profile":"restrictive","memory_mb":-1,"labels":{"a":"b"}}`, `{"by":"1h"}`, `{"size":2}`,
			`[]`, `null`, `"x"`, `{"name":"` + strings.Repeat("a", 300) + `"}`, `{"commands":[{"command":["true"]}]}`} {
			f.Add(uint8(i), []byte(s))
		}
	}
	// One handler (building one is most of the cost), over a fresh fake
	// each run: the holder's embedded fake is swapped, runs of one worker
	// being sequential.
	holder := &fakeHolder{}
	h := NewHandler(holder, HandlerOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		rt := rts[int(which)%len(rts)]
		for _, slow := range []string{"sleep", "tty", "flood"} {
			if bytes.Contains(body, []byte(slow)) {
				return // the fake's scripts that run until killed or write megabytes: not decoders
			}
		}
		fake := newFake()
		close(fake.gate) // no script waits for a test to let it go
		fake.sandboxes["fz"] = &fakeSandbox{info: api.SandboxInfo{Name: "fz", Status: api.StatusRunning},
			files: map[string][]byte{}, dirs: map[string]bool{}, detached: map[string]*api.DetachedCommand{}}
		holder.fakeService = fake
		p := strings.NewReplacer("{name}", "fz", "{id}", "fz", "{uuid}", "fz", "{path...}", "fz", "{key}", "fz").Replace(rt.pattern)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r := httptest.NewRequestWithContext(ctx, rt.method, p, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code >= 500 && w.Code != http.StatusNotImplemented && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with %q: %d %s", rt.method, p, body, w.Code, w.Body.String())
		}
		if !rt.plain && !strings.HasPrefix(strings.TrimSpace(w.Body.String()), `{"success":`) {
			t.Fatalf("%s %s with %q: %d, not the envelope: %q", rt.method, p, body, w.Code, w.Body.String())
		}
	})
}

// fakeHolder is a Service whose fake can be swapped between requests.
type fakeHolder struct{ *fakeService }
