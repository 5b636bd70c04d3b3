package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/agentkernel/agentkernel/internal/audit"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// hostService's network and vault, kept beside it (daemon_test.go).
var hostNet = struct {
	sync.Mutex
	policy  map[*hostService]api.NetworkPolicy
	puts    map[*hostService][]api.NetworkPolicy
	secrets map[*hostService]map[string]string
}{policy: map[*hostService]api.NetworkPolicy{}, puts: map[*hostService][]api.NetworkPolicy{}, secrets: map[*hostService]map[string]string{}}

func (s *hostService) SandboxNetwork(_ context.Context, name string) (api.NetworkInfo, error) {
	if !s.has(name) {
		return api.NetworkInfo{}, errdefs.ErrNotFound
	}
	hostNet.Lock()
	defer hostNet.Unlock()
	p, ok := hostNet.policy[s]
	if !ok {
		p = api.NetworkPolicy{Profile: "moderate", Allow: []string{"old.example.com", "keep.example.com"}}
	}
	return api.NetworkInfo{Sandbox: name, Mode: "gateway", Policy: &p, Running: true,
		Published: []api.PublishedPort{{HostPort: 8080, SandboxPort: 80, Address: "127.0.0.1:8080"}},
		Secrets:   []api.SecretBinding{{Name: "K", Host: "api.example.com", Header: "Authorization"}},
		Stats:     &api.NetworkStats{TCPAllowed: 3, TCPDenied: 1}}, nil
}

func (s *hostService) SetSandboxNetwork(ctx context.Context, name string, p api.NetworkPolicy) (api.NetworkInfo, error) {
	hostNet.Lock()
	hostNet.policy[s] = p
	hostNet.puts[s] = append(hostNet.puts[s], p)
	hostNet.Unlock()
	return s.SandboxNetwork(ctx, name)
}

func (s *hostService) NetworkLog(_ context.Context, name string, limit int) ([]api.NetworkEvent, error) {
	t := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	return []api.NetworkEvent{
		{Time: t, Kind: "dns", Name: "example.com", IPs: []string{"203.0.113.1"}, QType: "A", RCode: "NOERROR", Allowed: true, Rule: "allow:example.com"},
		{Time: t, Kind: "connect", Proto: "tcp", IP: "10.0.0.1", Port: 22, Rule: "forbidden:10.0.0.0/8"},
		{Time: t, Kind: "request", Proto: "tcp", Name: "api.example.com", IP: "203.0.113.2", Port: 443, Allowed: true, Rule: "secret:api.example.com", Method: "POST", Status: 200, SecretInjected: true},
	}, nil
}

func (s *hostService) vault() map[string]string {
	if hostNet.secrets[s] == nil {
		hostNet.secrets[s] = map[string]string{}
	}
	return hostNet.secrets[s]
}

func (s *hostService) ListSecrets(context.Context) ([]api.SecretInfo, error) {
	hostNet.Lock()
	defer hostNet.Unlock()
	var out []api.SecretInfo
	for n := range s.vault() {
		out = append(out, api.SecretInfo{Name: n, CreatedAt: time.Now()})
	}
	return out, nil
}

func (s *hostService) GetSecret(_ context.Context, name string) (api.SecretValue, error) {
	hostNet.Lock()
	defer hostNet.Unlock()
	v, ok := s.vault()[name]
	if !ok {
		return api.SecretValue{}, errdefs.ErrNotFound
	}
	return api.SecretValue{Name: name, Value: v}, nil
}

func (s *hostService) SetSecret(_ context.Context, name, value string) (api.SecretInfo, error) {
	hostNet.Lock()
	defer hostNet.Unlock()
	s.vault()[name] = value
	return api.SecretInfo{Name: name}, nil
}

func (s *hostService) DeleteSecret(_ context.Context, name string) error {
	hostNet.Lock()
	defer hostNet.Unlock()
	delete(s.vault(), name)
	return nil
}

func TestCreateNetworkFlags(t *testing.T) {
	svc, sock := startDaemon(t)
	out, errOut, code := cli(t, nil, "--socket", sock, "create", "dev", "--allow", "a.example.com", "--allow", "*.b.example.com",
		"--block", "evil.example.com", "--allow-cidr", "203.0.113.0/24:443", "--preset", "claude",
		"--secret", "OPENAI_API_KEY:api.openai.com", "--secret", "T:git.example.com:X-Token", "--publish", "8080:80")
	if code != 0 || out != "dev\n" {
		t.Fatalf("create: %d %q %q", code, out, errOut)
	}
	req := svc.createdReqs()[0]
	n := req.Network
	if n == nil || !slices.Equal(n.Allow, []string{"a.example.com", "*.b.example.com"}) || n.Block[0] != "evil.example.com" ||
		n.AllowCIDRs[0] != "203.0.113.0/24:443" || n.Presets[0] != "claude" || n.Profile != "" {
		t.Fatalf("network %+v", n)
	}
	if !slices.Equal(req.Secrets, []string{"OPENAI_API_KEY:api.openai.com", "T:git.example.com:X-Token"}) || !slices.Equal(req.Publish, []string{"8080:80"}) {
		t.Fatalf("secrets %v publish %v", req.Secrets, req.Publish)
	}
	// No network flag: no network field, the profile decides.
	cli(t, nil, "--socket", sock, "create", "plain")
	if r := svc.createdReqs()[1]; r.Network != nil || r.Secrets != nil || r.Publish != nil {
		t.Fatalf("plain create: %+v", r)
	}
	// A value on the command line is refused before anything is sent.
	_, errOut, code = cli(t, nil, "--socket", sock, "create", "x", "--secret", "K=sk-abc:api.example.com")
	if code == 0 || !strings.Contains(errOut, "secret set") || strings.Contains(errOut, "sk-abc") {
		t.Fatalf("inline secret: %d %q", code, errOut)
	}
	for _, bad := range [][]string{{"--publish", "80"}, {"--publish", "a:b"}, {"--secret", "nohost"}} {
		if _, _, code := cli(t, nil, append([]string{"--socket", sock, "create", "y"}, bad...)...); code == 0 {
			t.Errorf("%v accepted", bad)
		}
	}
	if len(svc.createdReqs()) != 2 {
		t.Fatalf("refused creates reached the daemon: %d", len(svc.createdReqs()))
	}
	// run takes the same flags.
	_, errOut, code = cli(t, nil, "--socket", sock, "run", "--allow", "c.example.com", "--publish", "0:3000", "--", "true")
	if code != 0 {
		t.Fatalf("run: %d %q", code, errOut)
	}
	if r := svc.createdReqs()[2]; r.Network == nil || r.Network.Allow[0] != "c.example.com" || r.Publish[0] != "0:3000" {
		t.Fatalf("run request %+v", r)
	}
}

func TestSandboxNetworkCmd(t *testing.T) {
	svc, sock := startDaemon(t)
	cli(t, nil, "--socket", sock, "create", "dev")
	out, _, code := cli(t, nil, "--socket", sock, "sandbox", "network", "dev")
	for _, want := range []string{"gateway (running", "moderate (package registries", "old.example.com, keep.example.com",
		"127.0.0.1:8080 -> 80", "$K -> api.example.com (Authorization)", "tcp 3 allowed, 1 denied"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("show: %d, want %q in\n%s", code, want, out)
		}
	}
	hostNet.Lock()
	puts := len(hostNet.puts[svc])
	hostNet.Unlock()
	if puts != 0 {
		t.Fatal("showing changed the policy")
	}
	out, _, code = cli(t, nil, "--socket", sock, "--json", "sandbox", "network", "dev", "--allow", "new.example.com",
		"--remove", "old.example.com", "--allow", "keep.example.com", "--preset", "codex", "--profile", "permissive")
	var info api.NetworkInfo
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil {
		t.Fatalf("change: %d %s", code, out)
	}
	hostNet.Lock()
	got := hostNet.puts[svc]
	hostNet.Unlock()
	if len(got) != 1 || !slices.Equal(got[0].Allow, []string{"keep.example.com", "new.example.com"}) ||
		got[0].Presets[0] != "codex" || got[0].Profile != "permissive" {
		t.Fatalf("PUT %+v", got)
	}
}

func TestSecretCmds(t *testing.T) {
	svc, sock := startDaemon(t)
	const value = "sk-cli-test-value"
	out, errOut, code := cli(t, strings.NewReader(value+"\n"), "--socket", sock, "secret", "set", "API_KEY")
	if code != 0 || out != "API_KEY\n" || strings.Contains(out+errOut, value) {
		t.Fatalf("set: %d %q %q", code, out, errOut)
	}
	hostNet.Lock()
	stored := svc.vault()["API_KEY"]
	hostNet.Unlock()
	if stored != value {
		t.Fatalf("stored %q", stored)
	}
	out, _, code = cli(t, nil, "--socket", sock, "secret", "list")
	if code != 0 || !strings.Contains(out, "API_KEY") || strings.Contains(out, value) {
		t.Fatalf("list: %d %q", code, out)
	}
	out, _, code = cli(t, nil, "--socket", sock, "secret", "get", "API_KEY")
	if code != 0 || out != value+"\n" {
		t.Fatalf("get: %d %q", code, out)
	}
	if _, errOut, code := cli(t, strings.NewReader(""), "--socket", sock, "secret", "set", "EMPTY"); code == 0 || !strings.Contains(errOut, "no value") {
		t.Fatalf("empty stdin: %d %q", code, errOut)
	}
	if _, _, code := cli(t, nil, "--socket", sock, "secret", "rm", "API_KEY"); code != 0 {
		t.Fatal("delete failed")
	}
	if _, _, code := cli(t, nil, "--socket", sock, "secret", "get", "API_KEY"); code == 0 {
		t.Fatal("get after delete succeeded")
	}
}

func TestAuditCmd(t *testing.T) {
	svc, sock := startDaemon(t)
	cli(t, nil, "--socket", sock, "create", "dev")
	out, _, code := cli(t, nil, "--socket", sock, "audit", "dev")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 || !strings.Contains(lines[1], "example.com") || !strings.Contains(lines[1], "203.0.113.1") ||
		!strings.Contains(lines[2], "10.0.0.1:22/tcp") || !strings.Contains(lines[2], "denied") || !strings.Contains(lines[2], "forbidden:10.0.0.0/8") ||
		!strings.Contains(lines[3], "secret injected") || !strings.Contains(lines[4], "dev: make test") || !strings.Contains(lines[4], "exit 2") ||
		!strings.Contains(lines[4], "42 B out") || !strings.Contains(lines[4], "env TOKEN") {
		t.Fatalf("audit: %d\n%s", code, out)
	}
	// --json: one record per line, as written; --denied keeps denials.
	out, _, code = cli(t, nil, "--socket", sock, "--json", "audit", "--sandbox", "dev", "--denied")
	var ev api.NetworkEvent
	if code != 0 || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &ev) != nil || ev.Port != 22 || !strings.Contains(out, `"hash":"`) {
		t.Fatalf("audit --denied --json: %d %s", code, out)
	}
	// The global log (all five records and the start), -l bounds it.
	out, _, code = cli(t, nil, "--socket", sock, "--json", "audit", "-l", "2")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"type":"command_finished"`) {
		t.Fatalf("audit -l 2: %d %s", code, out)
	}
	if out, _, code := cli(t, nil, "--socket", sock, "audit", "--since", "2029-01-01T00:00:00Z", "--json"); code != 0 || strings.Count(out, "\n") != 3 { // the network events of 2030
		t.Fatalf("audit --since 2029: %d %s", code, out)
	}
	if out, _, code := cli(t, nil, "--socket", sock, "audit", "--since", "1h", "--json"); code != 0 || strings.Count(out, "\n") != 5 {
		t.Fatalf("audit --since 1h: %d %s", code, out)
	}
	if _, errOut, code := cli(t, nil, "--socket", sock, "audit", "--since", "yesterday"); code == 0 || !strings.Contains(errOut, "RFC 3339") {
		t.Fatalf("bad --since: %d %s", code, errOut)
	}
	if out, _, code := cli(t, nil, "--socket", sock, "audit", "--path"); code != 0 || strings.TrimSpace(out) != svc.auditLog() {
		t.Fatalf("--path: %d %s", code, out)
	}

	out, _, code = cli(t, nil, "--socket", sock, "audit", "verify")
	if code != 0 || !strings.Contains(out, "ok: 5 records verified") {
		t.Fatalf("verify: %d %s", code, out)
	}
	b, _ := os.ReadFile(svc.auditLog())
	os.WriteFile(svc.auditLog(), bytes.Replace(b, []byte("make"), []byte("nake"), 1), 0o600)
	_, errOut, code := cli(t, nil, "--socket", sock, "audit", "verify", "--sandbox", "dev")
	if code == 0 || !strings.Contains(errOut, "line 5 (seq 5): altered") {
		t.Fatalf("verify after an edit: %d %s", code, errOut)
	}
}

// auditLog is the hostService's real audit log (internal/audit) holding
// the network events of NetworkLog and one exec.
func (s *hostService) auditLog() string {
	p := filepath.Join(s.dir, "audit.jsonl")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	w, err := audit.Open(p, audit.Options{})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	evs, _ := s.NetworkLog(context.Background(), "dev", 0)
	for _, e := range evs {
		w.Append(audit.Entry{Time: e.Time, Type: "network", Sandbox: "dev", Fields: e})
	}
	w.Append(audit.Entry{Type: "command_finished", Sandbox: "dev", Fields: map[string]any{
		"command": []string{"make", "test"}, "exit_code": 2, "duration_ms": 1500, "bytes_out": 42, "user": "dev", "env_names": []string{"TOKEN"}}})
	return p
}

func (s *hostService) AuditLog(_ context.Context, sandbox string, since time.Time, limit int) (api.AuditLog, error) {
	p := s.auditLog()
	out := api.AuditLog{Path: p}
	audit.Read(func(r audit.Record) bool {
		if (sandbox == "" || r.Sandbox == sandbox) && !r.Time.Before(since) {
			out.Records = append(out.Records, r.Line)
		}
		return true
	}, p)
	if limit > 0 && len(out.Records) > limit {
		out.Records = out.Records[len(out.Records)-limit:]
	}
	return out, nil
}

func (s *hostService) VerifyAudit(_ context.Context, sandbox string) (api.AuditVerification, error) {
	p := s.auditLog()
	res, err := audit.Verify(nil, p)
	v := api.AuditVerification{OK: err == nil, Path: p, Files: res.Files, Records: res.Records, FirstSeq: res.First, LastSeq: res.Last}
	var b *audit.Broken
	if errors.As(err, &b) {
		v.Broken = &api.AuditBreak{File: b.File, Line: b.Line, Seq: b.Seq, Reason: b.Reason}
	}
	return v, nil
}
