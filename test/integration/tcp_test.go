package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTCP starts `agentkernel serve --port N` in a home of its own and
// checks the TCP listener's guard: loopback only, a token for everything
// but /health, private files, no CORS.
func TestTCP(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	port := freePort(t)
	// One host directory that token holders may name (daemon.toml [api]).
	shared := filepath.Join(e.home, "shared-root")
	if err := os.MkdirAll(filepath.Join(shared, "usr", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.home, "daemon.toml"), []byte(fmt.Sprintf("[api]\nhost_paths = [%q]\n", shared)), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(e.home, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := e.command(ctx, "serve", "--port", strconv.Itoa(port)) // the default host must be loopback
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			t.Errorf("serve did not exit within 15s of SIGTERM")
			cmd.Process.Kill()
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if !waitFor(15*time.Second, func() bool {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && socketAnswers(e.socket())
	}) {
		t.Fatalf("serve --port %d did not answer on TCP and on its socket", port)
	}

	if addrs := listenAddrs(t, cmd.Process.Pid, port); len(addrs) != 1 || addrs[0] != "127.0.0.1" {
		t.Errorf("port %d is bound on %v, want 127.0.0.1 only", port, addrs)
	}
	tokBytes, err := os.ReadFile(filepath.Join(e.home, "token"))
	tok := strings.TrimSpace(string(tokBytes))
	if err != nil || len(tok) < 32 {
		t.Fatalf("token file: %q, %v", tok, err)
	}
	for p, want := range map[string]os.FileMode{
		filepath.Join(e.home, "token"): 0o600,
		e.socket():                     0o600 | os.ModeSocket,
		filepath.Dir(e.socket()):       0o700 | os.ModeDir,
	} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, modeOf(fi), err, want)
		}
	}

	get := func(path, auth string) (int, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Origin", "http://evil.example")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	checks := []struct {
		path, auth string
		want       int
	}{
		{"/health", "", http.StatusOK},
		{"/sandboxes", "", http.StatusUnauthorized},
		{"/sandboxes", "Bearer wrong-" + tok, http.StatusUnauthorized},
		{"/sandboxes", "Bearer " + tok[:len(tok)-1], http.StatusUnauthorized},
		{"/sandboxes", "Basic " + tok, http.StatusUnauthorized},
		{"/sandboxes", "Bearer " + tok, http.StatusOK},
		{"/sandboxes/nope", "", http.StatusUnauthorized},
		{"/openapi.json", "", http.StatusUnauthorized},
	}
	for _, c := range checks {
		st, h := get(c.path, c.auth)
		if st != c.want {
			t.Errorf("GET %s with %q: %d, want %d", c.path, redact(c.auth, tok), st, c.want)
		}
		if v := h.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("GET %s: Access-Control-Allow-Origin: %q", c.path, v)
		}
	}
	// A CORS preflight gets no blessing either.
	req, _ := http.NewRequest("OPTIONS", base+"/sandboxes", nil)
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("preflight: Access-Control-Allow-Origin: %q", v)
		}
	}
	// The Unix socket needs no token.
	if st, body, _ := apiCall(t, e, "GET", "/sandboxes", "", nil); st != http.StatusOK {
		t.Errorf("GET /sandboxes on the socket: %d %s", st, body)
	}
	checkTCPHostPaths(t, e, base, tok, shared)
}

// checkTCPHostPaths: a token holder cannot have the daemon read host paths
// (the finding: POST /images/import {"path":"/etc"} over TCP, then the
// files API, served the host's /etc/shadow), except under daemon.toml's
// [api] host_paths.
func checkTCPHostPaths(t *testing.T, e *env, base, tok, shared string) {
	t.Helper()
	post := func(path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct{ path, body string }{
		{"/images/import", `{"name":"stolen-etc","path":"/etc"}`},
		{"/images/import", `{"name":"stolen-etc","path":"` + shared + `/../../../etc"}`},
		{"/sandboxes", `{"name":"hostetc","dirs":["/etc:/hostetc:ro"]}`},
		{"/images/build", `{"name":"b","dockerfile":{"context":"/etc"}}`},
	} {
		if st, body := post(c.path, c.body); st != http.StatusForbidden || !strings.Contains(body, "host_paths") {
			t.Errorf("POST %s %s over TCP: %d %s; want 403 naming host_paths", c.path, c.body, st, body)
		}
	}
	if st, body, _ := apiCall(t, e, "GET", "/images/stolen-etc", "", nil); st != http.StatusNotFound {
		t.Errorf("the refused import left an image: %d %s", st, body)
	}
	if st, body, _ := apiCall(t, e, "GET", "/sandboxes/hostetc", "", nil); st != http.StatusNotFound {
		t.Errorf("the refused create left a sandbox: %d %s", st, body)
	}
	// Under the configured directory it works.
	if st, body := post("/images/import", `{"name":"shared-root","path":"`+shared+`"}`); st != http.StatusCreated {
		t.Errorf("import of an allowed host directory over TCP: %d %s", st, body)
	}
}

func modeOf(fi os.FileInfo) any {
	if fi == nil {
		return "-"
	}
	return fi.Mode()
}

func redact(auth, tok string) string { return strings.ReplaceAll(auth, tok, "<token>") }

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// listenAddrs returns the local addresses listening on port, from
// /proc/net/tcp and tcp6.
//
// It reads the daemon's own view (/proc/PID/net): /proc/net follows the
// test process's main thread, whose network namespace another test may
// have changed.
func listenAddrs(t *testing.T, pid, port int) []string {
	t.Helper()
	var out []string
	for _, f := range []string{fmt.Sprintf("/proc/%d/net/tcp", pid), fmt.Sprintf("/proc/%d/net/tcp6", pid)} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st ...; st 0A is LISTEN.
			if len(fields) < 4 || fields[3] != "0A" {
				continue
			}
			hostHex, portHex, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(portHex, 16, 16); !ok || err != nil || int(p) != port {
				continue
			}
			out = append(out, hexIP(hostHex))
		}
		fh.Close()
	}
	return out
}

// hexIP decodes /proc/net/tcp's address: 32-bit words in host (little
// endian) order.
func hexIP(h string) string {
	var b []byte
	for i := 0; i+8 <= len(h); i += 8 {
		w, _ := strconv.ParseUint(h[i:i+8], 16, 32)
		b = append(b, byte(w), byte(w>>8), byte(w>>16), byte(w>>24))
	}
	return net.IP(b).String()
}

// TestServeAPIKeys: serve --api-key (repeatable), upstream's quick start:
// each key works as a Bearer token and as X-API-Key, a wrong one gets 401,
// a foreign Host gets 403 (DNS rebinding),
// no token file is made, and the keys never reach the log; --host beyond
// loopback without a key is refused saying why.
func TestServeAPIKeys(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	k1, k2 := "key-one-"+randomHex8()+randomHex8(), "key-two-"+randomHex8()+randomHex8()
	base := serveTCP(t, e, "--api-key", k1, "--api-key", k2)
	get := func(header, value string) int {
		req, _ := http.NewRequest("GET", base+"/sandboxes", nil)
		if header != "" {
			req.Header.Set(header, value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		header, value string
		want          int
	}{
		{"Authorization", "Bearer " + k1, 200}, {"Authorization", "Bearer " + k2, 200}, {"X-API-Key", k2, 200},
		{"Authorization", "Bearer " + k1 + "x", 401}, {"X-API-Key", "wrong-key-0123456789", 401}, {"", "", 401},
	} {
		if got := get(c.header, c.value); got != c.want {
			t.Errorf("%s %q: %d, want %d", c.header, c.value, got, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(e.home, "token")); err == nil {
		t.Errorf("a token file was generated although keys were given")
	}
	// DNS rebinding: a web page whose name resolves to 127.0.0.1 makes the
	// browser send that name as Host; refused even with a valid key.
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	for host, want := range map[string]int{"evil.example:" + port: 403, "localhost:" + port: 200, "127.0.0.1:" + port: 200} {
		req, _ := http.NewRequest("GET", base+"/sandboxes", nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+k1)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
	// The upstream-style CLI client with the key.
	if r := e.akEnv(t, []string{"AGENTKERNEL_BASE_URL=" + base, "AGENTKERNEL_API_KEY=" + k2}, "sandbox", "list"); r.code != 0 {
		t.Errorf("CLI over TCP with AGENTKERNEL_API_KEY: %v", r)
	}
	if b, _ := os.ReadFile(filepath.Join(e.home, "daemon.log")); strings.Contains(string(b), k1) || strings.Contains(string(b), k2) {
		t.Errorf("the daemon log holds an API key")
	}

	e2 := newEnv(t)
	r := e2.ak(t, "serve", "--host", "0.0.0.0", "--port", strconv.Itoa(freePort(t)))
	if r.code == 0 || !strings.Contains(r.stderr, "needs an API key") {
		t.Errorf("serve --host 0.0.0.0 without a key: %v", r)
	}
	if r := e2.ak(t, "serve", "--port", strconv.Itoa(freePort(t)), "--api-key", "short"); r.code == 0 || !strings.Contains(r.stderr, "at least 16") {
		t.Errorf("serve --api-key short: %v", r)
	}
}
