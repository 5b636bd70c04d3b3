package netgw

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/netgw/mitm"
)

// TestSecretInjection: a request to a bound host leaves the sandbox with
// the placeholder and reaches the server with the real key; a host without a
// binding is not intercepted; the key appears in no log and no audit event.
func TestSecretInjection(t *testing.T) {
	w := newWorld(t)
	ca, sandboxCA := newSandboxCA(t)
	const secret = "sk-real-0123456789"
	var logs bytes.Buffer
	s := newSandbox(t, w, Config{
		Policy:        allowPolicy("allowed.test", "other.test"),
		Secrets:       []mitm.Binding{{Host: "allowed.test", Header: "x-api-key", Value: secret}},
		CA:            ca,
		UpstreamRoots: w.caPool,
		Logger:        slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	hdr := http.Header{"X-Api-Key": {"PLACEHOLDER"}}
	r := s.do(helperReq{Op: "get", URL: "https://allowed.test/", CA: sandboxCA, Header: hdr})
	if r.Status != 200 || r.Body != "hello allowed.test via HTTP/1.1 key="+secret {
		t.Fatalf("bound host: %+v", r)
	}
	// The sandbox trusting only the real CA sees the interception.
	if r := s.do(helperReq{Op: "get", URL: "https://allowed.test/", CA: w.caFile, Header: hdr}); r.Status != 0 {
		t.Fatalf("bound host verified with the world's CA: %+v", r)
	}
	// A host without a binding is spliced untouched: the world's CA
	// verifies it and the placeholder arrives as sent.
	r = s.do(helperReq{Op: "get", URL: "https://other.test/", CA: w.caFile, Header: hdr})
	if r.Status != 200 || !strings.HasSuffix(r.Body, "key=PLACEHOLDER") {
		t.Fatalf("unbound host: %+v", r)
	}
	ev := s.waitEvent("request", func(e Event) bool { return e.Kind == "request" })
	if !ev.SecretInjected || ev.Status != 200 || ev.Method != "GET" || ev.Rule != "secret:allowed.test" {
		t.Fatalf("request event: %+v", ev)
	}
	s.waitEvent("intercepted close", func(e Event) bool { return e.Kind == "close" && e.Intercepted })
	s.gw.Close()
	audit, _ := json.Marshal(s.find(func(Event) bool { return true }))
	if bytes.Contains(audit, []byte(secret)) || bytes.Contains(logs.Bytes(), []byte(secret)) {
		t.Fatal("the secret appears in the audit log or the logs")
	}
}

// newSandboxCA makes an interception CA and the file a sandbox trusts it by.
func newSandboxCA(t *testing.T) (*mitm.CA, string) {
	ca, err := mitm.NewCA("sandbox CA")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "sandbox-ca.pem")
	os.WriteFile(file, ca.CertPEM(), 0o644)
	return ca, file
}

// TestSetSecrets: a gateway started with a CA and no bindings (a warm-pool
// sandbox's) takes bindings while it runs; the next request to the bound
// host gets the key. Without a CA, bindings are refused and none apply.
func TestSetSecrets(t *testing.T) {
	w := newWorld(t)
	ca, sandboxCA := newSandboxCA(t)
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test"), CA: ca, UpstreamRoots: w.caPool})
	hdr := http.Header{"X-Api-Key": {"PLACEHOLDER"}}
	// Before: spliced, the world's CA verifies it, the placeholder arrives.
	if r := s.do(helperReq{Op: "get", URL: "https://allowed.test/", CA: w.caFile, Header: hdr}); r.Status != 200 || !strings.HasSuffix(r.Body, "key=PLACEHOLDER") {
		t.Fatalf("before the binding: %+v", r)
	}
	const secret = "sk-claimed-0123456789"
	if err := s.gw.SetSecrets([]mitm.Binding{{Host: "allowed.test", Header: "x-api-key", Value: secret}}); err != nil {
		t.Fatal(err)
	}
	if r := s.do(helperReq{Op: "get", URL: "https://allowed.test/", CA: sandboxCA, Header: hdr}); r.Status != 200 || !strings.HasSuffix(r.Body, "key="+secret) {
		t.Fatalf("after the binding: %+v", r)
	}
	if err := s.gw.SetSecrets([]mitm.Binding{{Host: "", Header: "x", Value: "v"}}); err == nil {
		t.Error("a malformed binding was accepted")
	}

	plain := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test"), UpstreamRoots: w.caPool})
	if err := plain.gw.SetSecrets([]mitm.Binding{{Host: "allowed.test", Header: "x-api-key", Value: secret}}); err == nil {
		t.Error("a gateway without a CA took a secret binding")
	}
	if r := plain.do(helperReq{Op: "get", URL: "https://allowed.test/", CA: w.caFile, Header: hdr}); r.Status != 200 || !strings.HasSuffix(r.Body, "key=PLACEHOLDER") {
		t.Fatalf("refused binding applied anyway: %+v", r)
	}
}
