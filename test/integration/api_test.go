package integration

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// apiCall sends one request to the daemon over its Unix socket and returns
// the status, the body and the response.
func apiCall(t *testing.T, e *env, method, path, contentType string, body io.Reader) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(method, "http://agentkernel"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the path exactly as written (no cleaning, no re-escaping).
	req.URL.Opaque = "//agentkernel" + path
	if i := strings.IndexByte(path, '?'); i >= 0 {
		req.URL.Opaque = "//agentkernel" + path[:i]
		req.URL.RawQuery = path[i+1:]
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.httpClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	return resp.StatusCode, string(b), resp
}

// envelopeError decodes the error message of a JSON envelope.
func envelopeError(body string) string {
	var env api.Envelope
	if json.Unmarshal([]byte(body), &env) != nil {
		return ""
	}
	return env.Error
}

// TestAPIHostileInput sends malformed, oversized and escaping requests and
// expects clear refusals that change nothing and crash nothing.
func TestAPIHostileInput(t *testing.T) {
	requireEnv(t)
	e := shared
	e.create(t, "it-api")
	pid, _ := e.daemonPID()
	notCreated := func(name string) {
		t.Helper()
		if st, body, _ := apiCall(t, e, "GET", "/sandboxes/"+name, "", nil); st != http.StatusNotFound {
			t.Errorf("sandbox %s exists after a refused create: %d %s", name, st, body)
		}
	}

	st, body, _ := apiCall(t, e, "POST", "/sandboxes", "application/json",
		strings.NewReader(`{"name":"it-api-x","bogus_field":1}`))
	if st != http.StatusBadRequest || !strings.Contains(envelopeError(body), "bogus_field") {
		t.Errorf("unknown field: %d %s, want 400 naming bogus_field", st, body)
	}
	notCreated("it-api-x")

	big := `{"name":"it-api-big","labels":{"k":"` + strings.Repeat("a", 17<<20) + `"}}`
	st, body, _ = apiCall(t, e, "POST", "/sandboxes", "application/json", strings.NewReader(big))
	if st != http.StatusRequestEntityTooLarge {
		t.Errorf("17 MiB body: %d %.200s, want 413", st, body)
	}
	notCreated("it-api-big")

	for _, c := range []struct{ ct, body string }{
		{"application/json", `{"name":`},
		{"application/json", `{"name":"it-api-y"} {"name":"it-api-z"}`},
		{"text/plain", `{"name":"it-api-y"}`},
		{"application/json", `{"name":"it-api-y","labels":"not-a-map"}`},
	} {
		st, body, _ := apiCall(t, e, "POST", "/sandboxes", c.ct, strings.NewReader(c.body))
		if st != http.StatusBadRequest || envelopeError(body) == "" {
			t.Errorf("create with %s %q: %d %s, want 400 with a message", c.ct, c.body, st, body)
		}
	}
	notCreated("it-api-y")
	notCreated("it-api-z")

	st, body, _ = apiCall(t, e, "POST", "/sandboxes", "application/json", strings.NewReader(`{"name":"it-api"}`))
	if st != http.StatusConflict {
		t.Errorf("duplicate create: %d %s, want 409", st, body)
	}

	st, body, _ = apiCall(t, e, "POST", "/sandboxes/it-api/exec", "application/json",
		strings.NewReader(`{"command":["definitely-not-a-command"]}`))
	// Upstream's answer for a command that fails: 409 with success false,
	// exit_code and output at the top; ours keeps the whole result in data.
	var res api.ExecResponse
	var top struct {
		Success  bool    `json:"success"`
		Error    string  `json:"error"`
		ExitCode *int    `json:"exit_code"`
		Output   *string `json:"output"`
	}
	json.Unmarshal([]byte(body), &api.Envelope{Data: &res})
	json.Unmarshal([]byte(body), &top)
	if st != http.StatusConflict || top.Success || top.ExitCode == nil || *top.ExitCode != 127 || top.Output == nil ||
		!strings.Contains(top.Error, "127") || res.ExitCode != 127 || !strings.Contains(res.Stderr+res.Error, "not found") {
		t.Errorf("exec of a missing binary: %d %s, want 409, exit_code 127, output and a message", st, body)
	}
	st, body, _ = apiCall(t, e, "POST", "/run", "application/json", strings.NewReader(`{"command":["sh","-c","echo out; exit 3"]}`))
	if err := json.Unmarshal([]byte(body), &top); err != nil || st != http.StatusConflict || top.Success || top.ExitCode == nil || *top.ExitCode != 3 || top.Output == nil || *top.Output != "out\n" {
		t.Errorf("POST /run exiting 3: %d %s, want upstream's 409 with exit_code 3 and output", st, body)
	}

	for _, p := range []string{
		"/sandboxes/it-api/files/tmp/../../etc/passwd",
		"/sandboxes/it-api/files/tmp/%2E%2E/etc/passwd",
		"/sandboxes/it-api/files/tmp/..%2F..%2Fetc%2Fpasswd",
		"/sandboxes/it-api/files/tmp/%2e%2e",
		"/sandboxes/it-api/files/tmp/x%00y",
		"/sandboxes/it-api/archive?path=/tmp/../etc",
	} {
		if st, body, _ := apiCall(t, e, "GET", p, "", nil); st != http.StatusBadRequest {
			t.Errorf("GET %s: %d %.200s, want 400", p, st, body)
		}
	}

	symlinkEscape(t, e)

	if st, body, _ := apiCall(t, e, "GET", "/health", "", nil); st != http.StatusOK {
		t.Errorf("GET /health after the hostile requests: %d %s", st, body)
	}
	if now, _ := e.daemonPID(); now != pid || !alive(pid) {
		t.Errorf("the daemon changed or died: pid %d, was %d", now, pid)
	}
	r := e.ak(t, "exec", "it-api", "--", "echo", "still here")
	if r.code != 0 || r.stdout != "still here\n" {
		t.Errorf("the sandbox after the hostile requests: %v", r)
	}
}

// symlinkEscape plants symlinks to / and to a host directory in the
// sandbox and tries to read and write through them with the files and
// archive APIs. The host's marker must never show, and nothing may land
// on the host.
func symlinkEscape(t *testing.T, e *env) {
	hostDir := t.TempDir()
	secret := make([]byte, 16)
	rand.Read(secret)
	marker := "host-secret-" + hex.EncodeToString(secret)
	if err := os.WriteFile(filepath.Join(hostDir, "marker.txt"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	rel := strings.TrimPrefix(hostDir, "/")
	e.ok(t, "exec", "it-api", "--", "sh", "-c",
		"mkdir -p /tmp/esc && ln -s / /tmp/esc/root && ln -s "+hostDir+" /tmp/esc/dir && ln -s "+hostDir+"/marker.txt /tmp/esc/file && "+
			"ln -s ../../../../../../../../.. /tmp/esc/up && mkdir -p "+hostDir+" && echo inside > /tmp/inside.txt")

	// The control: links are followed inside the sandbox, so the reads
	// below do reach the agent's file code.
	st, body, _ := apiCall(t, e, "GET", "/sandboxes/it-api/files/tmp/esc/root/tmp/inside.txt", "", nil)
	if st != http.StatusOK || !strings.Contains(body, `"inside\n"`) {
		t.Errorf("reading the sandbox's own file through /tmp/esc/root: %d %s", st, body)
	}

	reads := []string{
		"/sandboxes/it-api/files/tmp/esc/root/" + rel + "/marker.txt",
		"/sandboxes/it-api/files/tmp/esc/dir/marker.txt",
		"/sandboxes/it-api/files/tmp/esc/file",
		"/sandboxes/it-api/files/tmp/esc/up/" + rel + "/marker.txt",
		"/sandboxes/it-api/files/tmp/esc/dir?list=1",
		"/sandboxes/it-api/files/tmp/esc/root/" + rel + "?list=1",
		"/sandboxes/it-api/archive?path=/tmp/esc/dir",
		"/sandboxes/it-api/archive?path=/tmp/esc/file",
		"/sandboxes/it-api/archive?path=/tmp/esc/root/" + rel,
		"/sandboxes/it-api/archive?path=/tmp/esc",
	}
	for _, p := range reads {
		st, body, _ := apiCall(t, e, "GET", p, "", nil)
		if strings.Contains(body, marker) {
			t.Errorf("GET %s read the host's file through a symlink: %d %.300s", p, st, body)
		}
		var list []api.FileInfo
		if strings.HasSuffix(p, "list=1") && json.Unmarshal([]byte(body), &api.Envelope{Data: &list}) == nil {
			for _, fi := range list {
				if fi.Name == "marker.txt" {
					t.Errorf("GET %s listed the host's directory through a symlink: %.300s", p, body)
				}
			}
		}
	}

	for _, p := range []string{
		"/sandboxes/it-api/files/tmp/esc/dir/planted-1",
		"/sandboxes/it-api/files/tmp/esc/root/" + rel + "/planted-2",
		"/sandboxes/it-api/files/tmp/esc/file",
	} {
		apiCall(t, e, "PUT", p, "application/octet-stream", strings.NewReader("planted"))
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "planted-3", Typeflag: tar.TypeReg, Mode: 0o644, Size: 7})
	tw.Write([]byte("planted"))
	tw.WriteHeader(&tar.Header{Name: "dir/planted-4", Typeflag: tar.TypeReg, Mode: 0o644, Size: 7})
	tw.Write([]byte("planted"))
	tw.Close()
	for _, dst := range []string{"/tmp/esc/dir", "/tmp/esc"} {
		apiCall(t, e, "PUT", "/sandboxes/it-api/archive?path="+dst, "application/x-tar", bytes.NewReader(tb.Bytes()))
	}
	apiCall(t, e, "DELETE", "/sandboxes/it-api/files/tmp/esc/dir/marker.txt", "", nil)

	entries, _ := os.ReadDir(hostDir)
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	if len(names) != 1 || names[0] != "marker.txt" {
		t.Errorf("the host directory %s changed through sandbox symlinks: %v", hostDir, names)
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "marker.txt")); err != nil || string(b) != marker {
		t.Errorf("the host's marker changed: %q %v", b, err)
	}
}
