package httpapi

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// FuzzDecodeExecRequest feeds arbitrary bodies to the exec request decoder
// and validator: they must never panic, and what they accept must be sane.
func FuzzDecodeExecRequest(f *testing.F) {
	for _, s := range []string{
		`{"command":["echo","hi"]}`,
		`{"command":["ls"],"env":["A=1"],"workdir":"/tmp","timeout":"1d2h","sudo":true}`,
		`{"command":["sh"],"tty":true,"rows":24,"cols":80}`,
		`{"command":[""]}`, `{"command":null}`, `[]`, `null`, `{"command":["a"]}{}`,
		`{"command":["a"],"workdir":"/a/../b"}`, `{"command":["a"],"timeout":"9999999999d"}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, streaming bool) {
		var req api.ExecRequest
		if err := decodeStrict(strings.NewReader(string(body)), &req, true); err != nil {
			return
		}
		opts, err := execOptions(req, streaming)
		if err != nil {
			return
		}
		if len(opts.Argv) == 0 || opts.Argv[0] == "" {
			t.Fatalf("accepted an empty command: %q", body)
		}
		if opts.Workdir != "" && (path.Clean(opts.Workdir) != opts.Workdir || hasDotDot(opts.Workdir)) {
			t.Fatalf("accepted workdir %q", opts.Workdir)
		}
		if opts.Timeout < 0 || opts.Timeout > maxTimeout {
			t.Fatalf("accepted timeout %v", opts.Timeout)
		}
		if !streaming && opts.TTY {
			t.Fatal("accepted a TTY on a buffered exec")
		}
		for _, kv := range opts.Env {
			if !strings.Contains(kv, "=") || strings.HasPrefix(kv, "=") {
				t.Fatalf("accepted env %q", kv)
			}
		}
	})
}

func hasDotDot(p string) bool {
	for _, s := range strings.Split(p, "/") {
		if s == ".." {
			return true
		}
	}
	return false
}

// FuzzFilePath checks SandboxPath: never a ".." component, always an
// absolute clean path without NUL, and idempotent.
func FuzzFilePath(f *testing.F) {
	for _, s := range []string{"tmp/hello.txt", "/tmp/x", "", "/", "a/../b", "..", "a/./b", "a//b", "a/", "\x00", "...", "a/..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		abs, err := SandboxPath(p)
		if err != nil {
			return
		}
		if !strings.HasPrefix(abs, "/") || path.Clean(abs) != abs || hasDotDot(abs) || strings.IndexByte(abs, 0) >= 0 {
			t.Fatalf("SandboxPath(%q) = %q", p, abs)
		}
		if again, err := SandboxPath(abs); err != nil || again != abs {
			t.Fatalf("not idempotent: %q -> %q -> %q %v", p, abs, again, err)
		}
	})
}

// FuzzRequestPath sends arbitrary request paths through checkRequestPath
// and the route patterns: whatever reaches a files handler must be a
// clean path.
func FuzzRequestPath(f *testing.F) {
	for _, s := range []string{"/sandboxes/sb/files/tmp/a", "/sandboxes/sb/files//tmp/a", "/sandboxes/sb/files/a/%2e%2e/b", "/sandboxes/sb/files/a%2F..%2Fb", "/x/../y"} {
		f.Add(s)
	}
	s := NewHandler(newFake(), HandlerOptions{}).(*server)
	f.Fuzz(func(t *testing.T, p string) {
		u, err := url.Parse("http://x" + p)
		if err != nil || u.Host != "x" {
			return
		}
		r := httptest.NewRequest("GET", "http://x/", nil)
		r.URL = u
		r, err = checkRequestPath(r)
		if err != nil {
			return
		}
		_, pat := s.mux.Handler(r)
		if pat != "GET /sandboxes/{name}/files/{path...}" {
			return
		}
		// Resolve the wildcard the way ServeHTTP would, through a mux.
		var got string
		m := http.NewServeMux()
		m.HandleFunc("GET /sandboxes/{name}/files/{path...}", func(_ http.ResponseWriter, r *http.Request) { got = r.PathValue("path") })
		m.ServeHTTP(httptest.NewRecorder(), r)
		if abs, err := SandboxPath(got); err == nil && hasDotDot(abs) {
			t.Fatalf("%q reached the handler as %q", p, abs)
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"30s", "1d", "1d12h", "d", "0d", "-1s", "1d-5h", "65535d", "9223372036854775807ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := api.ParseDuration(s)
		if err == nil && (d <= 0 || d > maxTimeout) {
			t.Fatalf("api.ParseDuration(%q) = %v", s, d)
		}
	})
}
