package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/agentkernel/agentkernel/internal/audit"
	"github.com/agentkernel/agentkernel/internal/backend"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/netgw"
	"github.com/agentkernel/agentkernel/internal/netgw/dnstest"
	"github.com/agentkernel/agentkernel/internal/netgw/mitm"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func requireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and a tap")
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter (util-linux)")
	}
}

// startNetSupervisor runs Run with a gateway; start is the backend.
func startNetSupervisor(t *testing.T, spec NetworkSpec, start startFunc) (string, <-chan error, string) {
	t.Helper()
	dir := t.TempDir()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Config{Dir: dir, Ready: pw, Backend: start, Spec: &backend.Spec{Name: spec.Sandbox}, Network: &spec})
	}()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	pr.Close()
	return dir, done, strings.TrimSpace(line)
}

// TestRunWithNetwork: the backend gets a namespace with eth0 behind the
// gateway; the ctl socket reports and changes the policy; published ports
// and the audit log work; everything goes when the sandbox stops.
func TestRunWithNetwork(t *testing.T) {
	requireNetAdmin(t)
	up := dnstest.Start(t, map[string][]netip.Addr{"allowed.test": {netip.MustParseAddr("203.0.113.9")}})
	spec := NetworkSpec{
		Sandbox: "nettest",
		Policy:  policy.Policy{Allow: []string{"allowed.test"}},
		Publish: []Port{{Host: 0, Sandbox: 8080}},
		Config:  NetworkConfig{Resolvers: []netip.AddrPort{up.Addr}},
	}
	var nsPath string
	dir, done, ready := startNetSupervisor(t, spec, startFunc(func(ctx context.Context, n *backend.NetworkAttachment) (backend.Instance, error) {
		if n == nil {
			return nil, errors.New("no network")
		}
		p, err := n.Netns(ctx)
		if err != nil {
			return nil, err
		}
		if again, _ := n.Netns(ctx); again != p {
			return nil, errors.New("a second Netns call gave another path")
		}
		nsPath = p
		if l := n.Link; l.MTU != DefaultMTU || l.SandboxAddr != netgw.DefaultSandboxAddr {
			return nil, errors.New("unexpected link")
		}
		if n.CACert != nil {
			return nil, errors.New("a CA without secrets")
		}
		return startProc(t.TempDir())
	}))
	if ready != "ok" {
		t.Fatalf("ready line %q", ready)
	}
	nsInfo, err := os.Stat(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nsenter", "--net="+nsPath, "ip", "-o", "-4", "addr", "show", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "100.96.0.2/30") {
		t.Fatalf("eth0 in the namespace: %v %s", err, out)
	}
	c := Dial(dir)
	ctx := context.Background()
	st, err := c.Network(ctx)
	if err != nil || len(st.Policy.Allow) != 1 || len(st.Published) != 1 || st.Published[0].Sandbox != 8080 {
		t.Fatalf("network status %+v %v", st, err)
	}
	// Policy changes: a bad one is refused with its class, a good one
	// takes effect.
	if _, err := c.SetNetworkPolicy(ctx, policy.Policy{Allow: []string{"bad name!"}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad policy: %v", err)
	}
	st, err = c.SetNetworkPolicy(ctx, policy.Policy{Profile: policy.Moderate, Allow: []string{"other.test"}})
	if err != nil || st.Policy.Profile != policy.Moderate || st.Policy.Allow[0] != "other.test" {
		t.Fatalf("set policy: %+v %v", st, err)
	}
	// A connection to the published port reaches into the sandbox (where
	// nothing listens) and is audited.
	conn, err := net.DialTimeout("tcp", st.Published[0].Addr, 2*time.Second)
	if err != nil {
		t.Fatalf("published port: %v", err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	conn.Read(make([]byte, 1))
	conn.Close()
	if _, err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, AuditLogFile))
	if err != nil {
		t.Fatal(err)
	}
	var ev netgw.Event
	// Line 1 starts the chain; line 2 is the gateway's first event.
	if err := json.Unmarshal(bytes.SplitN(b, []byte("\n"), 3)[1], &ev); err != nil || ev.Kind != "inbound" || ev.Port != 8080 {
		t.Fatalf("audit.jsonl: %v %s", err, b)
	}
	if _, err := audit.Verify(nil, filepath.Join(dir, AuditLogFile)); err != nil {
		t.Error(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, AuditLogFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("audit.jsonl mode %v", fi.Mode())
	}
	if fi, err := os.Stat(nsPath); err == nil && os.SameFile(fi, nsInfo) {
		t.Errorf("%s still holds the namespace after the supervisor ended", nsPath)
	}
}

// TestRunNetworkNotAttached: a backend that ignores the gateway fails the
// start instead of running without the network it was promised.
func TestRunNetworkNotAttached(t *testing.T) {
	up := dnstest.Start(t, nil)
	var inst *procInstance
	dir, done, ready := startNetSupervisor(t, NetworkSpec{Config: NetworkConfig{Resolvers: []netip.AddrPort{up.Addr}}},
		startFunc(func(ctx context.Context, n *backend.NetworkAttachment) (backend.Instance, error) {
			p, err := startProc(t.TempDir())
			inst = p
			return p, err
		}))
	if !strings.Contains(ready, "did not attach") {
		t.Fatalf("ready line %q", ready)
	}
	if err := <-done; err == nil {
		t.Fatal("Run succeeded")
	}
	select {
	case <-inst.exited:
	default:
		t.Fatal("the instance was left running")
	}
	if e, _ := ReadExit(dir); e == nil || !strings.Contains(e.Error, "did not attach") {
		t.Fatalf("exit record %+v", e)
	}
}

// TestNetworkWithSecrets: a bound secret gives the sandbox a CA.
func TestNetworkWithSecrets(t *testing.T) {
	up := dnstest.Start(t, nil)
	dir := t.TempDir()
	alog, err := openAuditLog(filepath.Join(dir, AuditLogFile), "s", "id", discard())
	if err != nil {
		t.Fatal(err)
	}
	defer alog.close()
	n, err := newNetwork(dir, NetworkSpec{
		Sandbox: "s", Policy: policy.Policy{Allow: []string{"api.example.com"}},
		Secrets: []mitm.Binding{{Host: "api.example.com", Value: "Bearer x"}},
		Config:  NetworkConfig{Resolvers: []netip.AddrPort{up.Addr}},
	}, alog, discard())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if !bytes.Contains(n.CACert(), []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("CA %q", n.CACert())
	}
	n.Close()
	if _, err := n.Netns(context.Background()); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Netns after Close: %v", err)
	}
}

// TestSpawnSecretsPipe: secrets reach the supervisor on fd SecretsFD and
// nowhere else: not in its argv, environment or state directory.
func TestSpawnSecretsPipe(t *testing.T) {
	dir := t.TempDir()
	const value = "sk-test-spawn-0123456789"
	out := filepath.Join(t.TempDir(), "got")
	script := `cat <&4 >"$1"; tr '\0' '\n' </proc/self/environ >>"$1.env"; echo ok >&3; sleep 0.2`
	exited, err := Spawn(context.Background(), dir, SpawnOptions{
		Exe: "/bin/sh", Args: []string{"-c", script, "sh", out},
		Env:     []string{"PATH=/usr/bin:/bin"},
		Secrets: []Secret{{Name: "K", Value: value}},
	})
	if err != nil {
		t.Fatal(err)
	}
	<-exited
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadSecrets(bytes.NewReader(b))
	if err != nil || len(got) != 1 || got[0].Value != value {
		t.Fatalf("secrets read: %+v %v", got, err)
	}
	env, _ := os.ReadFile(out + ".env")
	if bytes.Contains(env, []byte(value)) {
		t.Fatal("the secret is in the supervisor's environment")
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(value)) {
				t.Errorf("the secret is in %s", p)
			}
		}
		return nil
	})
	if s, err := ReadSecrets(strings.NewReader("")); err != nil || s != nil {
		t.Fatalf("empty pipe: %v %v", s, err)
	}
	if _, err := ReadSecrets(strings.NewReader(`[{"name":"K","value":"` + value + `"`)); err == nil || strings.Contains(err.Error(), value) {
		t.Fatalf("bad pipe: %v", err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func FuzzReadSecrets(f *testing.F) {
	f.Add([]byte(`[{"name":"K","value":"v"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"name":"K"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ReadSecrets(bytes.NewReader(b))
		if err != nil {
			if len(b) > 8 && strings.Contains(err.Error(), string(b)) {
				t.Fatalf("the error repeats the pipe's contents: %v", err)
			}
			return
		}
		if len(b) == 0 && s != nil {
			t.Fatalf("empty pipe gave %v", s)
		}
	})
}
