package integration

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestTLS serves TCP with the certificate serve --tls generates and talks
// to it with curl --cacert, as a user would; plain HTTP and a wrong key are
// refused, and --require-tls without a certificate does not start.
func TestTLS(t *testing.T) {
	requireEnv(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl")
	}
	e := newEnv(t)
	const key = "it-tls-key-0123456789abc"
	port := freePort(t)
	startServe(t, e, "--port", strconv.Itoa(port), "--tls", "--api-key", key)
	ca := filepath.Join(e.home, "tls", "cert.pem")
	curl := func(args ...string) (string, error) {
		out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
		return string(out), err
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	if out, err := curl("--cacert", ca, "-H", "Authorization: Bearer "+key, base+"/sandboxes"); err != nil || !strings.Contains(out, `"success":true`) {
		t.Fatalf("https with the generated certificate: %v %s", err, out)
	}
	if out, err := curl("--cacert", ca, "https://localhost:"+strconv.Itoa(port)+"/health"); err != nil || !strings.Contains(out, "ok") {
		t.Errorf("https://localhost: %v %s", err, out)
	}
	if out, err := curl("--cacert", ca, "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer wrong-key-0123456789", base+"/sandboxes"); err != nil || out != "401" {
		t.Errorf("a wrong key: %v %q, want 401", err, out)
	}
	if out, err := curl(base + "/health"); err == nil {
		t.Errorf("curl trusted the self-signed certificate without --cacert: %s", out)
	}
	if out, err := curl(fmt.Sprintf("http://127.0.0.1:%d/health", port)); err == nil && strings.Contains(out, "ok") {
		t.Errorf("plain HTTP served on the TLS port: %s", out)
	}
	e2 := newEnv(t)
	r := e2.ak(t, "serve", "--port", strconv.Itoa(freePort(t)), "--require-tls")
	if r.code == 0 || !strings.Contains(r.stderr, "require-tls") {
		t.Errorf("serve --require-tls without a certificate: %v", r)
	}
}
