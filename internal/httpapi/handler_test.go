package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func envelopeOf(t *testing.T, body []byte) api.Envelope {
	t.Helper()
	var env api.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("not an envelope: %v: %.300s", err, body)
	}
	return env
}

func TestAuth(t *testing.T) {
	e := newEnv(t, HandlerOptions{Token: "tok-123"})
	for _, tc := range []struct {
		name   string
		method string
		path   string
		header map[string]string
		want   int
	}{
		{"health open", "GET", "/health", nil, 200},
		{"health open with a wrong token", "GET", "/health", map[string]string{"Authorization": "Bearer nope"}, 200},
		{"no token", "GET", "/sandboxes", nil, 401},
		{"wrong bearer", "GET", "/sandboxes", map[string]string{"Authorization": "Bearer tok-1234"}, 401},
		{"prefix of the token", "GET", "/sandboxes", map[string]string{"Authorization": "Bearer tok-12"}, 401},
		{"basic scheme", "GET", "/sandboxes", map[string]string{"Authorization": "Basic tok-123"}, 401},
		{"wrong api key", "GET", "/sandboxes", map[string]string{"X-API-Key": "tok"}, 401},
		{"bearer", "GET", "/sandboxes", map[string]string{"Authorization": "Bearer tok-123"}, 200},
		{"bearer lower case", "GET", "/sandboxes", map[string]string{"Authorization": "bearer tok-123"}, 200},
		{"x-api-key", "GET", "/sandboxes", map[string]string{"X-API-Key": "tok-123"}, 200},
		{"openapi needs the token", "GET", "/openapi.json", nil, 401},
		{"unknown route needs the token", "GET", "/nope", nil, 401},
		{"post health is not public", "POST", "/health", nil, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, tc.method, tc.path, nil, tc.header)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want == 401 {
				if env := envelopeOf(t, body); env.Success || env.Code != "unauthenticated" {
					t.Fatalf("envelope %+v", env)
				}
			}
		})
	}
	// Through the client: a wrong token is ErrUnauthenticated.
	bad, err := client.New(client.WithBaseURL(e.srv.URL), client.WithToken("wrong"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.ListSandboxes(testCtx(t)); !errors.Is(err, errdefs.ErrUnauthenticated) {
		t.Fatalf("wrong token: %v", err)
	}
	if err := bad.Health(testCtx(t)); err != nil {
		t.Fatalf("health with a wrong token: %v", err)
	}
}

func TestBodyLimits(t *testing.T) {
	e := newEnv(t, HandlerOptions{MaxBodyBytes: 1024})
	ctx := testCtx(t)
	if _, err := e.client.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "sb"}); err != nil {
		t.Fatal(err)
	}
	big := `{"command":["echo","` + strings.Repeat("a", 2000) + `"]}`
	resp, body := e.do(t, "POST", "/sandboxes/sb/exec", []byte(big), jsonHeader)
	if resp.StatusCode != 413 || envelopeOf(t, body).Code != "too_large" {
		t.Fatalf("big JSON: %d %s", resp.StatusCode, body)
	}
	// A raw upload over the limit, streamed to the service.
	err := e.client.WriteFile(ctx, "sb", "/big", bytes.NewReader(make([]byte, 4096)), 0)
	if !errors.Is(err, errdefs.ErrTooLarge) {
		t.Fatalf("big raw upload: %v", err)
	}
	// A JSON write whose decoded content fits but whose body does not.
	_, err = e.client.WriteFiles(ctx, "sb", map[string]string{"/a": strings.Repeat("b", 2000)})
	if !errors.Is(err, errdefs.ErrTooLarge) {
		t.Fatalf("big batch write: %v", err)
	}
	// Buffered exec output is capped too (MaxExecOutput).
	e2 := newEnv(t, HandlerOptions{MaxExecOutput: 100 << 10})
	if _, err := e2.client.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "sb"}); err != nil {
		t.Fatal(err)
	}
	_, err = e2.client.Exec(ctx, "sb", api.ExecRequest{Command: []string{"flood", "10000000"}})
	if !errors.Is(err, errdefs.ErrTooLarge) || !strings.Contains(err.Error(), "exec/ws") {
		t.Fatalf("flood: %v", err)
	}
	if p := e2.fake.lastProc(); p == nil || !p.wasKilled() {
		t.Fatal("the flooding process was not killed")
	}
	out, err := e2.client.Exec(ctx, "sb", api.ExecRequest{Command: []string{"flood", "90000"}})
	if err != nil || len(out.Output) != 90000 {
		t.Fatalf("flood under the cap: %d %v", len(out.Output), err)
	}
}

func TestStrictDecoding(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	e.client.CreateSandbox(testCtx(t), api.CreateSandboxRequest{Name: "sb"})
	for _, tc := range []struct {
		name, path, body string
		header           map[string]string
		want             int
		msg              string
	}{
		{"unknown field", "/sandboxes", `{"name":"x","colour":"red"}`, jsonHeader, 400, `unknown field "colour"`},
		{"unknown nested", "/batch/run", `{"commands":[{"command":["echo"],"shell":true}]}`, jsonHeader, 400, `unknown field "shell"`},
		{"trailing data", "/sandboxes", `{"name":"x"} {"name":"y"}`, jsonHeader, 400, "after the JSON value"},
		{"trailing garbage", "/sandboxes", `{"name":"x"}]`, jsonHeader, 400, "after the JSON value"},
		{"not JSON", "/sandboxes", `name=x`, jsonHeader, 400, "invalid request body"},
		{"wrong type", "/sandboxes", `{"name":7}`, jsonHeader, 400, "invalid request body"},
		{"empty body", "/sandboxes", ``, jsonHeader, 400, "request body is required"},
		{"form content type", "/sandboxes", `{"name":"x"}`, map[string]string{"Content-Type": "text/plain"}, 400, "Content-Type must be application/json"},
		{"no content type", "/sandboxes", `{"name":"x"}`, nil, 400, "Content-Type must be application/json"},
		{"empty command", "/sandboxes/sb/exec", `{"command":[]}`, jsonHeader, 400, "command is required"},
		{"NUL in argv", "/sandboxes/sb/exec", `{"command":["echo","a\u0000b"]}`, jsonHeader, 400, "NUL"},
		{"bad env", "/sandboxes/sb/exec", `{"command":["echo"],"env":["NOVALUE"]}`, jsonHeader, 400, "KEY=VALUE"},
		{"relative workdir", "/sandboxes/sb/exec", `{"command":["echo"],"workdir":"tmp"}`, jsonHeader, 400, "absolute"},
		{"bad timeout", "/sandboxes/sb/exec", `{"command":["echo"],"timeout":"soon"}`, jsonHeader, 400, `invalid duration "soon"`},
		{"negative timeout", "/sandboxes/sb/exec", `{"command":["echo"],"timeout":"-1s"}`, jsonHeader, 400, "invalid duration"},
		{"tty on buffered exec", "/sandboxes/sb/exec", `{"command":["echo"],"tty":true}`, jsonHeader, 400, "streaming exec"},
		{"sudo and user", "/sandboxes/sb/exec", `{"command":["echo"],"sudo":true,"user":"bob"}`, jsonHeader, 400, "sudo conflicts"},
		{"bad ttl", "/sandboxes", `{"name":"x","ttl":"forever"}`, jsonHeader, 400, "invalid duration"},
		{"bad extend", "/sandboxes/sb/extend", `{"by":"0s"}`, jsonHeader, 400, "invalid duration"},
		{"bad encoding", "/sandboxes/sb/files/tmp/a", `{"content":"x","encoding":"rot13"}`, jsonHeader, 400, "invalid encoding"},
		{"bad base64", "/sandboxes/sb/files/tmp/a", `{"content":"!!!","encoding":"base64"}`, jsonHeader, 400, "invalid base64"},
		{"bad mode", "/sandboxes/sb/files/tmp/a", `{"content":"x","mode":"999"}`, jsonHeader, 400, "invalid file mode"},
		{"empty batch", "/batch/run", `{"commands":[]}`, jsonHeader, 400, "must not be empty"},
		{"relative import", "/images/import", `{"name":"a","path":"rel/dir"}`, jsonHeader, 400, "absolute host path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if strings.Contains(tc.path, "/files/") {
				method = "PUT"
			}
			resp, body := e.do(t, method, tc.path, []byte(tc.body), tc.header)
			env := envelopeOf(t, body)
			if resp.StatusCode != tc.want || !strings.Contains(env.Error, tc.msg) || env.Code != "invalid_argument" {
				t.Fatalf("%d %+v, want %d containing %q", resp.StatusCode, env, tc.want, tc.msg)
			}
		})
	}
	// Upstream's Python client sends null for options it does not set.
	resp, body := e.do(t, "POST", "/sandboxes", []byte(`{"name":"py","image":null,"vcpus":null,"memory_mb":null,"profile":null}`), jsonHeader)
	if resp.StatusCode != 201 {
		t.Fatalf("nulls: %d %s", resp.StatusCode, body)
	}
}

func TestNamesAndPaths(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	ctx := testCtx(t)
	e.client.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "sb"})
	for _, name := range []string{"", "-x", ".x", "a/b", "by-uuid", strings.Repeat("a", 64), "sp ace", "ümlaut", "a\x00b"} {
		if _, err := e.client.CreateSandbox(ctx, api.CreateSandboxRequest{Name: name}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("create %q: %v", name, err)
		}
	}
	for _, name := range []string{"a", "A1", "my-box_2.3", strings.Repeat("z", 63)} {
		if _, err := e.client.CreateSandbox(ctx, api.CreateSandboxRequest{Name: name}); err != nil {
			t.Errorf("create %q: %v", name, err)
		}
	}
	if _, err := e.client.GetSandbox(ctx, "bad name"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("get a bad name: %v", err)
	}
	for _, p := range []string{
		"/sandboxes/sb/files/tmp/../etc/passwd",
		"/sandboxes/sb/files/../../etc/passwd",
		"/sandboxes/sb/files/tmp/%2e%2e/etc/passwd",
		"/sandboxes/sb/files/tmp%2F..%2Fetc",
		"/sandboxes/sb/files/tmp/./a",
		"/sandboxes/sb/files/tmp//a",
		"/sandboxes/sb/files/a%00b",
		"/sandboxes/../health",
		"/sandboxes/sb/archive?path=/tmp/../etc",
	} {
		for _, method := range []string{"GET", "PUT", "DELETE"} {
			if strings.Contains(p, "archive") && method == "DELETE" {
				continue
			}
			resp, body := e.do(t, method, p, nil, nil)
			env := envelopeOf(t, body)
			if resp.StatusCode != 400 || env.Code != "invalid_argument" || !strings.Contains(env.Error, "path") {
				t.Errorf("%s %s: %d %+v", method, p, resp.StatusCode, env)
			}
		}
	}
	// Upstream's clients send "tmp/x"; "/tmp/x" (a double slash) works too.
	for _, p := range []string{"/sandboxes/sb/files/tmp/x", "/sandboxes/sb/files//tmp/x"} {
		e.fake.Mkdir(ctx, "sb", "/tmp")
		resp, body := e.do(t, "PUT", p, []byte(`{"content":"hi"}`), jsonHeader)
		if resp.StatusCode != 200 || envelopeOf(t, body).Data != "Wrote 2 bytes to /tmp/x" {
			t.Errorf("PUT %s: %d %s", p, resp.StatusCode, body)
		}
	}
}

func TestNoCORSHeaders(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	for _, tc := range []struct{ method, path string }{{"GET", "/health"}, {"OPTIONS", "/sandboxes"}, {"GET", "/sandboxes"}, {"GET", "/nope"}} {
		resp, _ := e.do(t, tc.method, tc.path, nil, map[string]string{
			"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
		})
		for k := range resp.Header {
			if strings.HasPrefix(strings.ToLower(k), "access-control-") {
				t.Errorf("%s %s sent %s: %s", tc.method, tc.path, k, resp.Header.Get(k))
			}
		}
	}
}

func TestPanicRecovery(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	resp, body := e.do(t, "GET", "/sandboxes/panic", nil, nil)
	if env := envelopeOf(t, body); resp.StatusCode != 500 || env.Success || env.Error != "internal error" {
		t.Fatalf("panic: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(e.logs.String(), "on purpose") {
		t.Error("the panic was not logged")
	}
	if err := e.client.Health(testCtx(t)); err != nil {
		t.Fatalf("the server did not survive: %v", err)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	resp, body := e.do(t, "GET", "/nope", nil, nil)
	if resp.StatusCode != 404 || envelopeOf(t, body).Code != "not_found" {
		t.Fatalf("404: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do(t, "PATCH", "/sandboxes/sb", nil, nil)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, DELETE" || envelopeOf(t, body).Success {
		t.Fatalf("405: %d %v %s", resp.StatusCode, resp.Header, body)
	}
}

// TestOpenAPICoversRoutes checks that the document lists exactly the routes
// of the table, and that each route is registered on the handler's muxes
// under its own pattern.
func TestOpenAPICoversRoutes(t *testing.T) {
	s := NewHandler(newFake(), HandlerOptions{}).(*server)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(s.openapi, &doc); err != nil {
		t.Fatal(err)
	}
	samples := map[string]string{"{name}": "sb", "{uuid}": "1234", "{id}": "cmd1", "{path...}": "tmp/a"}
	ops := 0
	seenOp := map[string]bool{}
	wantOps := 0
	for _, rt := range routes {
		p, _ := openAPIPath(rt.pattern)
		methods, opIDs := []string{rt.method}, []string{rt.op}
		if rt.method == "" {
			// Every method: listed under each method no route of its own
			// has, with the method in the operationId.
			methods, opIDs = nil, nil
			for _, m := range proxyMethods {
				if slices.ContainsFunc(routes, func(o route) bool { return o.method == m && o.pattern == rt.pattern }) {
					continue
				}
				methods, opIDs = append(methods, m), append(opIDs, rt.op+m[:1]+strings.ToLower(m[1:]))
			}
		}
		for i, m := range methods {
			wantOps++
			op, ok := doc.Paths[p][strings.ToLower(m)]
			if !ok || op.OperationID != opIDs[i] {
				t.Errorf("%s %s is not in the document as %s (%+v)", m, rt.pattern, opIDs[i], op)
			}
			if seenOp[opIDs[i]] {
				t.Errorf("duplicate operationId %s", opIDs[i])
			}
			seenOp[opIDs[i]] = true
		}
		urlPath := rt.pattern
		for k, v := range samples {
			urlPath = strings.ReplaceAll(urlPath, k, v)
		}
		for _, m := range methods {
			r := httptest.NewRequest(m, urlPath, nil)
			mux := s.mux
			if rt.first {
				mux = s.first
			}
			if _, pat := mux.Handler(r); pat != rt.muxPattern() {
				t.Errorf("%s %s: the mux routes it to %q", m, urlPath, pat)
			}
			if _, pat := s.first.Handler(r); !rt.first && pat != "" {
				t.Errorf("%s %s is shadowed by %q", m, urlPath, pat)
			}
		}
	}
	for p, m := range doc.Paths {
		ops += len(m)
		_ = p
	}
	if ops != wantOps {
		t.Errorf("the document has %d operations, the table %d", ops, wantOps)
	}
}
