package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/agents"
)

// fakeOpenCodeSource is the "opencode" of the test's image: a static
// HTTP server that, like `opencode serve --port P --hostname H`, wants the
// basic-auth password of OPENCODE_SERVER_PASSWORD when one is set, and
// answers GET /global/health, streams an SSE event every second on
// /event, and echoes every other request as JSON. Building the real
// OpenCode image needs the npm registry.
const fakeOpenCodeSource = `package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "fake opencode: only serve")
		os.Exit(2)
	}
	port, host := "4096", "127.0.0.1"
	for i := 2; i+1 < len(os.Args); i += 2 {
		switch os.Args[i] {
		case "--port":
			port = os.Args[i+1]
		case "--hostname":
			host = os.Args[i+1]
		}
	}
	user, pw := os.Getenv("OPENCODE_SERVER_USERNAME"), os.Getenv("OPENCODE_SERVER_PASSWORD")
	if user == "" {
		user = "opencode"
	}
	var b [8]byte
	rand.Read(b[:])
	instance := hex.EncodeToString(b[:])
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); pw != "" && (!ok || u != user || p != pw) {
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			w.Header().Set("X-Instance", instance)
			w.Header().Set("Access-Control-Allow-Origin", "*")
			h(w, r)
		}
	}
	http.HandleFunc("/global/health", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, ` + "`" + `{"healthy":true,"version":"fake"}` + "`" + `)
	}))
	http.HandleFunc("/event", auth(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for n := 0; ; n++ {
			fmt.Fprintf(w, "data: {\"n\":%d,\"at\":%d}\n\n", n, time.Now().UnixMilli())
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
			}
		}
	}))
	http.HandleFunc("/", auth(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"instance": instance, "method": r.Method, "path": r.URL.EscapedPath(), "query": r.URL.RawQuery,
			"content_type": r.Header.Get("Content-Type"), "authorization": r.Header.Get("Authorization"),
			"x_api_key": r.Header.Get("X-Api-Key"), "custom": r.Header.Get("X-Custom"),
			"body_len": len(body), "body_sha256": hex.EncodeToString(sum[:]),
			"anthropic_key": os.Getenv("ANTHROPIC_API_KEY"),
		})
	}))
	fmt.Println("fake opencode listening on", host+":"+port)
	if err := http.ListenAndServe(host+":"+port, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
`

// ocEcho is what the fake's echo answers.
type ocEcho struct {
	Instance      string `json:"instance"`
	Method        string `json:"method"`
	Path          string `json:"path"`
	Query         string `json:"query"`
	ContentType   string `json:"content_type"`
	Authorization string `json:"authorization"`
	XAPIKey       string `json:"x_api_key"`
	Custom        string `json:"custom"`
	BodyLen       int    `json:"body_len"`
	BodySHA256    string `json:"body_sha256"`
	AnthropicKey  string `json:"anthropic_key"`
}

// TestOpenCodeProxy drives `serve`'s /opencode route over TCP against a
// sandbox whose "opencode" is fakeOpenCodeSource: the token (bearer or
// basic-auth password), one sandbox for concurrent first requests,
// requests and bodies passed through, an SSE stream that stays open, a
// new sandbox after `sandbox remove`, and DELETE /opencode.
//
// The two-minute soak of the event stream is a manual check:
// AGENTKERNEL_OPENCODE_SOAK=1 reads it for 130 seconds instead of 5 events.
func TestOpenCodeProxy(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	base, tok := ocServe(t, e)
	image := agents.OpenCode.Image()
	ocImage(t, e, image)
	dummyKey := "sk-ant-dummy-" + ocRandom()
	if r := e.akIn(t, strings.NewReader(dummyKey+"\n"), "secret", "set", "ANTHROPIC_API_KEY"); r.code != 0 {
		t.Fatalf("%v", r)
	}
	basic := func(pw string) string {
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth("opencode", pw)
		return req.Header.Get("Authorization")
	}
	tcp := &http.Client{Timeout: 3 * time.Minute}
	do := func(method, path, auth string, body []byte, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := tcp.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s %s: CORS header %s: %s", method, path, k, resp.Header.Get(k))
			}
		}
		return resp, b
	}
	// retry repeats a request answered 503 with Retry-After, as a client
	// would, and fails on any other error.
	retry := func(method, path, auth string, body []byte, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			resp, b := do(method, path, auth, body, hdr)
			if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
				return resp, b
			}
			if resp.Header.Get("Retry-After") != "2" || !strings.Contains(string(b), "starting") {
				t.Fatalf("%s %s: 503 that is not 'starting': %v %s", method, path, resp.Header, b)
			}
			time.Sleep(2 * time.Second)
		}
	}
	echo := func(resp *http.Response, b []byte) ocEcho {
		t.Helper()
		var ec ocEcho
		if resp.StatusCode != 200 || json.Unmarshal(b, &ec) != nil || ec.Instance == "" {
			t.Fatalf("not an echo: %d %s", resp.StatusCode, b)
		}
		return ec
	}

	// Without the token, nothing, and no sandbox is made.
	for _, auth := range []string{"", basic("wrong"), "Bearer " + tok[:len(tok)-1], "Basic " + tok} {
		if resp, b := do("GET", "/opencode/global/health", auth, nil, map[string]string{"Origin": "http://evil.example"}); resp.StatusCode != 401 {
			t.Errorf("with %q: %d %s", redact(auth, tok), resp.StatusCode, b)
		}
	}
	if list := e.list(t); len(list) != 0 {
		t.Fatalf("sandboxes after refused requests: %+v", list)
	}

	// Ten concurrent first requests: one sandbox, one server.
	var wg sync.WaitGroup
	instances := make([]string, 10)
	for i := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b := retry("GET", fmt.Sprintf("/opencode/first/%d", i), basic(tok), nil, nil)
			var ec ocEcho
			if resp.StatusCode != 200 || json.Unmarshal(b, &ec) != nil {
				t.Errorf("first request %d: %d %s", i, resp.StatusCode, b)
				return
			}
			instances[i] = ec.Instance
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, in := range instances {
		if in != instances[0] {
			t.Errorf("request %d reached server %s, request 0 %s", i, in, instances[0])
		}
	}
	list := e.list(t)
	if len(list) != 1 || list[0].Name != "opencode-attach" || list[0].Labels["agentkernel.agent"] != "opencode" ||
		list[0].MemoryMB != 2048 || list[0].VCPUs != 2 || list[0].Image != image {
		t.Fatalf("sandboxes: %+v", list)
	}
	first := list[0]
	if n := strings.Count(ocDaemonLog(e), "creating its sandbox"); n != 1 {
		t.Errorf("the daemon created %d sandboxes", n)
	}

	// Through the proxy: method, path below /opencode, query, headers and
	// body as sent; the daemon's token stays with the daemon; the API key
	// stays out of the sandbox.
	body := make([]byte, 3<<20)
	rand.Read(body)
	sum := sha256.Sum256(body)
	ec := echo(do("PUT", "/opencode/session/a%2Fb/msg?directory=%2Fwork&x=1", "Bearer "+tok, body,
		map[string]string{"Content-Type": "application/octet-stream", "X-Custom": "kept", "X-API-Key": tok}))
	if ec.Method != "PUT" || ec.Path != "/session/a%2Fb/msg" || ec.Query != "directory=%2Fwork&x=1" ||
		ec.ContentType != "application/octet-stream" || ec.Custom != "kept" || ec.BodyLen != len(body) || ec.BodySHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("the server saw %+v", ec)
	}
	if strings.Contains(ec.Authorization, tok) || ec.XAPIKey != "" || !strings.HasPrefix(ec.Authorization, "Basic ") {
		t.Errorf("the server got the daemon's credentials: %q %q", redact(ec.Authorization, tok), redact(ec.XAPIKey, tok))
	}
	if ec.AnthropicKey == "" || strings.Contains(ec.AnthropicKey, dummyKey) {
		t.Errorf("ANTHROPIC_API_KEY in the sandbox: %q (want a placeholder)", ec.AnthropicKey)
	}
	// On the Unix socket no token is needed.
	if st, b, _ := apiCall(t, e, "GET", "/opencode/global/health", "", nil); st != 200 || !strings.Contains(b, `"healthy":true`) {
		t.Errorf("health on the socket: %d %s", st, b)
	}
	// The sandbox's own port wants the server's password, which only the
	// daemon knows.
	if addr := ocPublished(t, e); addr != "" {
		if resp, err := http.Get("http://" + addr + "/global/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Errorf("the published port without the server's password: %d", resp.StatusCode)
			}
		}
	}

	// The event stream stays open and each event arrives as it is sent.
	ocEvents(t, base, tok)

	// Removed behind the proxy's back: the next request gets a new one.
	e.ok(t, "sandbox", "remove", "opencode-attach")
	ec2 := echo(retry("GET", "/opencode/again", basic(tok), nil, nil))
	if ec2.Instance == ec.Instance {
		t.Errorf("after sandbox remove the same server answered (%s)", ec2.Instance)
	}
	if info := e.info(t, "opencode-attach"); info.UUID == first.UUID || info.Status != "running" {
		t.Errorf("after sandbox remove: %+v (the first was %s)", info, first.UUID)
	}

	// DELETE /opencode tears it down.
	if resp, b := do("DELETE", "/opencode", "Bearer "+tok, nil, nil); resp.StatusCode != 200 || !strings.Contains(string(b), `"success":true`) {
		t.Fatalf("DELETE /opencode: %d %s", resp.StatusCode, b)
	}
	if r := e.ak(t, "sandbox", "info", "opencode-attach"); r.code == 0 {
		t.Errorf("the sandbox is still there after DELETE /opencode: %v", r)
	}
	if list := e.list(t); len(list) != 0 {
		t.Errorf("sandboxes after DELETE /opencode: %+v", list)
	}
}

// ocEvents reads /opencode/event: 5 events, or with
// AGENTKERNEL_OPENCODE_SOAK=1 two minutes and more of them, each within a
// few seconds of the last and the stream never cut.
func ocEvents(t *testing.T, base, tok string) {
	t.Helper()
	n, window := 5, 30*time.Second
	if os.Getenv("AGENTKERNEL_OPENCODE_SOAK") == "1" {
		n, window = 130, 3*time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/opencode/event", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /opencode/event: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /opencode/event: %d %v", resp.StatusCode, resp.Header)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: ") {
				select {
				case lines <- l:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended after %d events (%v): %v", i, time.Since(start).Round(time.Second), ctx.Err())
			}
			var ev struct{ N int }
			if json.Unmarshal([]byte(strings.TrimPrefix(l, "data: ")), &ev) != nil || ev.N != i {
				t.Fatalf("event %d: %q", i, l)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d did not arrive within 5s", i)
		}
	}
	// One a second: they came as they were sent, not at the end.
	if d := time.Since(start); d < time.Duration(n-2)*time.Second {
		t.Errorf("%d events in %v", n, d)
	}
}

// ocServe starts `agentkernel serve --port N` for e and returns its TCP
// base URL and token.
func ocServe(t *testing.T, e *env) (string, string) {
	t.Helper()
	base := serveTCP(t, e)
	b, err := os.ReadFile(filepath.Join(e.home, "token"))
	tok := strings.TrimSpace(string(b))
	if err != nil || len(tok) < 32 {
		t.Fatalf("token file: %v", err)
	}
	return base, tok
}

// serveTCP starts `serve --port N EXTRA…` in e's home until the test ends
// and returns its base URL once it answers.
func serveTCP(t *testing.T, e *env, extra ...string) string {
	t.Helper()
	port := freePort(t)
	logf, err := os.OpenFile(filepath.Join(e.home, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	cmd := e.command(ctx, append([]string{"serve", "--port", strconv.Itoa(port)}, extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Errorf("serve did not exit within 15s of SIGTERM")
			cmd.Process.Kill()
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if !waitFor(15*time.Second, func() bool {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && socketAnswers(e.socket())
	}) {
		t.Fatalf("serve --port %d did not answer", port)
	}
	return base
}

// ocImage imports an image called name whose /usr/local/bin/opencode is
// fakeOpenCodeSource, built static.
func ocImage(t *testing.T, e *env, name string) {
	t.Helper()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "main.go"), []byte(fakeOpenCodeSource), 0o644)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module fakeopencode\n\ngo 1.22\n"), 0o644)
	root := t.TempDir()
	for _, d := range []string{"usr/local/bin", "tmp", "etc", "root"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(root, "usr/local/bin/opencode"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the fake opencode: %v\n%s", err, out)
	}
	e.ok(t, "image", "import", name, root)
	t.Cleanup(func() { e.ak(t, "image", "rm", name) })
}

// ocPublished is the host address of the sandbox's port 3000.
func ocPublished(t *testing.T, e *env) string {
	t.Helper()
	st, b, _ := apiCall(t, e, "GET", "/sandboxes/opencode-attach/network", "", nil)
	var env struct {
		Data struct {
			Published []struct {
				SandboxPort int    `json:"sandbox_port"`
				Address     string `json:"address"`
			} `json:"published"`
		} `json:"data"`
	}
	if st != 200 || json.Unmarshal([]byte(b), &env) != nil {
		t.Errorf("network of opencode-attach: %d %s", st, b)
		return ""
	}
	for _, p := range env.Data.Published {
		if p.SandboxPort == 3000 {
			return p.Address
		}
	}
	t.Errorf("no published port 3000: %s", b)
	return ""
}

func ocDaemonLog(e *env) string {
	b, _ := os.ReadFile(filepath.Join(e.home, "daemon.log"))
	return string(b)
}

func ocRandom() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
