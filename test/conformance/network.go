package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// The addresses of the network suite's world. The caller builds the world
// (a network namespace where the daemon runs, test/integration does it)
// so that, seen from the daemon's gateways:
//
//   - AllowedIP serves HTTPS (a test CA; names allowed.test, other.test,
//     blocked.test) and HTTP on 80, answering "hello HOST auth=AUTHORIZATION",
//     and UDP echo on 7; NeverIP the same, but no name resolves to it.
//   - The upstream DNS resolves allowed.test, other.test and blocked.test
//     to AllowedIP, never.test to NeverIP, rebind.test to HostIP.
//   - HostIP is one of the daemon's own addresses (with its /24) and
//     MetaIP is configured too; both listen on port 80 and count what they
//     accept (NetworkWorld.Leaks).
//   - The gateways trust the test CA for intercepted hosts
//     (daemon.toml's upstream_ca_files).
const (
	AllowedIP = "203.0.113.10"
	NeverIP   = "203.0.113.11"
	HostIP    = "198.51.100.1"
	MetaIP    = "169.254.169.254"
	// probeMount is where a cold run binds NetworkWorld.ProbeDir.
	probeMount = "/probe"
	// probeCopy is where a pooled run copies the probe: pooled sandboxes
	// take no host directories, the host image's root is not writable,
	// and /var/tmp survives the restart LivePolicyAndAudit makes.
	probeCopy = "/var/tmp/probe"
)

// NetworkWorld is what RunNetwork needs from the caller.
type NetworkWorld struct {
	Backend string
	// Prefix makes sandbox names unique per run.
	Prefix string
	// ProbeDir is a host directory holding the probe (BuildProbe) and the
	// test CA as world-ca.pem; it is bound read-only at /probe, or copied
	// in when Pooled.
	ProbeDir string
	// Pooled runs the suite on sandboxes claimed from warm pools: it sets
	// pools for the backend (default, permissive and restrictive
	// profiles), copies the probe in through the files API instead of
	// binding it (a request with host directories is never pooled), and
	// fails a poolable create that did not claim. The caller's daemon must
	// have no pools of these keys of its own.
	Pooled bool
	// SecretValue is what the suite stores as the vault secret
	// IT_API_KEY; the caller can look for it on the host afterwards.
	SecretValue string
	// Leaks returns how many connections reached HostIP or MetaIP.
	Leaks func() int64
	// Dial connects to an address as the daemon would (published ports
	// listen on the daemon's loopback).
	Dial func(addr string) (net.Conn, error)
}

// RunNetwork is the network suite every backend with a network gateway must
// pass: the egress policy holds whatever the program in the sandbox does,
// secrets never enter the sandbox, ports publish, policy changes live, and
// the gateway audits what it decided.
func RunNetwork(t *testing.T, c *client.Client, w NetworkWorld) {
	s := &netSuite{c: c, w: w, dir: probeMount}
	if w.Pooled {
		s.dir = probeCopy
		s.setPools(t)
	}
	s.worldCA = s.dir + "/world-ca.pem"
	t.Run("AllowedNameOverHTTPS", s.allowedHTTPS)
	t.Run("BlockedNameNXDOMAIN", s.blockedName)
	t.Run("UnresolvedIPRefused", s.unresolvedIP)
	t.Run("SNIAndHostMismatch", s.sniMismatch)
	t.Run("HostLANMetadataRefused", s.forbidden)
	t.Run("ProxyVariablesAreNotTheBoundary", s.ignoresProxy)
	t.Run("SecretNeverInSandbox", s.secret)
	t.Run("Publish", s.publish)
	t.Run("LivePolicyAndAudit", s.livePolicy)
	t.Run("Restrictive", s.restrictive)
}

type netSuite struct {
	c   *client.Client
	w   NetworkWorld
	seq atomic.Int32
	// dir is the probe's directory in the sandbox, worldCA the test CA.
	dir, worldCA string
	// pools are the pools a Pooled run set, by profile ("" the default).
	pools map[string]api.PoolKey
}

// poolSizes are the pools a Pooled run keeps, by profile: most tests use
// the default profile, one each permissive and restrictive.
var poolSizes = map[string]int{"": 2, "permissive": 1, "restrictive": 1}

// poolWait bounds the wait for a pool to be ready.
const poolWait = 60 * time.Second

// setPools sets the Pooled run's pools and waits until they are full; they
// are drained at the end.
func (s *netSuite) setPools(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	s.pools = map[string]api.PoolKey{}
	for profile, size := range poolSizes {
		p, err := s.c.SetPool(ctx, api.SetPoolRequest{PoolKey: api.PoolKey{Backend: s.w.Backend, Profile: profile}, Size: size})
		if err != nil {
			t.Fatalf("setting the %q pool: %v", profile, err)
		}
		s.pools[profile] = p.PoolKey
		t.Cleanup(func() { s.c.SetPool(context.Background(), api.SetPoolRequest{PoolKey: p.PoolKey, Size: 0}) })
	}
	start := time.Now()
	for profile, size := range poolSizes {
		WaitPool(t, s.c, s.pools[profile], size, poolWait)
	}
	t.Logf("pools ready in %v", time.Since(start))
}

// sandbox creates a running sandbox with the probe, removed at the end.
// In a Pooled run, a request a pool can serve must be served from it.
func (s *netSuite) sandbox(t *testing.T, req api.CreateSandboxRequest) string {
	t.Helper()
	ctx := context.Background()
	req.Name = fmt.Sprintf("%snet%d", s.w.Prefix, s.seq.Add(1))
	req.Backend = s.w.Backend
	var (
		key    api.PoolKey
		pooled bool
		before api.PoolInfo
	)
	if s.w.Pooled {
		// A published port is bound at start: such a request is created
		// cold, as every request with no pool of its profile.
		key, pooled = s.pools[req.Profile]
		pooled = pooled && len(req.Publish) == 0
		if pooled {
			before = WaitPool(t, s.c, key, 1, poolWait)
		}
	} else {
		req.Dirs = append(req.Dirs, s.w.ProbeDir+":"+probeMount+":ro")
	}
	start := time.Now()
	info, err := s.c.CreateSandbox(ctx, req)
	if err != nil {
		t.Fatalf("create %s: %v", req.Name, err)
	}
	t.Cleanup(func() { s.c.RemoveSandbox(context.Background(), req.Name) })
	took := time.Since(start)
	if info.Network != "gateway" && req.Profile != "restrictive" {
		t.Fatalf("sandbox %s has network %q, want gateway", req.Name, info.Network)
	}
	how := "cold"
	if pooled {
		after := FindPool(t, s.c, key)
		if after.Claimed <= before.Claimed {
			t.Fatalf("sandbox %s was not claimed from pool %s: claimed %d, missed %d before; claimed %d, missed %d, ready %d after (last error %q)",
				req.Name, key, before.Claimed, before.Missed, after.Claimed, after.Missed, after.Ready, after.LastError)
		}
		how = "claimed from " + key.String()
	}
	if s.w.Pooled && req.Profile != "restrictive" {
		// The restrictive test runs no probe (and its root is read-only).
		s.copyProbe(t, req.Name)
	}
	t.Logf("sandbox %s created in %v (%s)", req.Name, took, how)
	return req.Name
}

// copyProbe copies the probe and the test CA into the sandbox as a user
// would, through the files API.
func (s *netSuite) copyProbe(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	if err := s.c.Mkdir(ctx, name, s.dir); err != nil {
		t.Fatalf("mkdir %s in %s: %v", s.dir, name, err)
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{"probe", 0o755}, {"world-ca.pem", 0o644}} {
		b, err := os.ReadFile(filepath.Join(s.w.ProbeDir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.c.WriteFile(ctx, name, s.dir+"/"+f.name, bytes.NewReader(b), f.mode); err != nil {
			t.Fatalf("writing %s/%s in %s: %v", s.dir, f.name, name, err)
		}
	}
}

func allow(names ...string) *api.NetworkPolicy { return &api.NetworkPolicy{Allow: names} }

// probeResult is the probe's answer.
type probeResult struct {
	IPs      []string `json:"ips"`
	NotFound bool     `json:"not_found"`
	Status   int      `json:"status"`
	Body     string   `json:"body"`
	Err      string   `json:"err"`
	Refused  bool     `json:"refused"`
	Reset    bool     `json:"reset"`
}

// probe runs the probe in the sandbox with a JSON request.
func (s *netSuite) probe(t *testing.T, name string, req map[string]any, env ...string) probeResult {
	t.Helper()
	b, _ := json.Marshal(req)
	res, err := s.c.Exec(context.Background(), name, api.ExecRequest{Command: []string{s.dir + "/probe", string(b)}, Env: env, Timeout: "60s"})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("probe %s: %v %+v", b, err, res)
	}
	var r probeResult
	if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
		t.Fatalf("probe %s: %v: %q", b, err, res.Stdout)
	}
	return r
}

func (s *netSuite) sh(t *testing.T, name, script string, env ...string) api.ExecResponse {
	t.Helper()
	// Long enough for a grep over a host image's /usr.
	res, err := s.c.Exec(context.Background(), name, api.ExecRequest{Command: []string{"sh", "-c", script}, Env: env, Timeout: "10m"})
	if err != nil {
		t.Fatalf("%q: %v", script, err)
	}
	return res
}

func (s *netSuite) allowedHTTPS(t *testing.T) {
	n := s.sandbox(t, api.CreateSandboxRequest{Network: allow("allowed.test")})
	r := s.probe(t, n, map[string]any{"op": "get", "url": "https://allowed.test/", "ca": s.worldCA})
	if r.Status != 200 || r.Body != "hello allowed.test auth=" {
		t.Fatalf("allowed name over HTTPS: %+v", r)
	}
	if r := s.probe(t, n, map[string]any{"op": "get", "url": "http://allowed.test/"}); r.Status != 200 {
		t.Fatalf("allowed name over HTTP: %+v", r)
	}
}

func (s *netSuite) blockedName(t *testing.T) {
	// blocked.test is known upstream but not allowed; other.test is
	// allowed and blocked, and the block wins.
	n := s.sandbox(t, api.CreateSandboxRequest{Network: &api.NetworkPolicy{Allow: []string{"allowed.test", "other.test"}, Block: []string{"other.test"}}})
	for _, name := range []string{"blocked.test", "other.test", "example.com"} {
		if r := s.probe(t, n, map[string]any{"op": "resolve", "name": name}); !r.NotFound || len(r.IPs) > 0 {
			t.Errorf("%s: %+v (want NXDOMAIN)", name, r)
		}
	}
	if r := s.probe(t, n, map[string]any{"op": "resolve", "name": "allowed.test"}); len(r.IPs) != 1 || r.IPs[0] != AllowedIP {
		t.Errorf("allowed.test: %+v", r)
	}
}

func (s *netSuite) unresolvedIP(t *testing.T) {
	n := s.sandbox(t, api.CreateSandboxRequest{Network: allow("allowed.test", "never.test")})
	start := time.Now()
	r := s.probe(t, n, map[string]any{"op": "get", "url": "https://" + NeverIP + "/", "ca": s.worldCA})
	if !r.Refused || time.Since(start) > 10*time.Second {
		t.Fatalf("never-resolved IP: %+v after %v (want refused at once)", r, time.Since(start))
	}
	// Resolving a name for it opens it.
	s.probe(t, n, map[string]any{"op": "resolve", "name": "never.test"})
	if r := s.probe(t, n, map[string]any{"op": "get", "url": "https://never.test/", "ca": s.worldCA}); r.Status != 200 {
		t.Fatalf("after resolving never.test: %+v", r)
	}
}

func (s *netSuite) sniMismatch(t *testing.T) {
	n := s.sandbox(t, api.CreateSandboxRequest{Network: allow("allowed.test")})
	s.probe(t, n, map[string]any{"op": "resolve", "name": "allowed.test"})
	// The address was resolved for allowed.test; the ClientHello names
	// other.test, which the policy does not allow.
	r := s.probe(t, n, map[string]any{"op": "get", "url": "https://" + AllowedIP + "/", "sni": "other.test", "ca": s.worldCA})
	if r.Status != 0 || (!r.Reset && !r.Refused) {
		t.Fatalf("SNI other.test to allowed.test's address: %+v", r)
	}
	if r := s.probe(t, n, map[string]any{"op": "get", "url": "http://" + AllowedIP + "/", "host": "other.test"}); r.Status != 0 {
		t.Fatalf("Host other.test to allowed.test's address: %+v", r)
	}
}

func (s *netSuite) forbidden(t *testing.T) {
	n := s.sandbox(t, api.CreateSandboxRequest{Profile: "permissive"})
	before := s.w.Leaks()
	for _, addr := range []string{MetaIP + ":80", HostIP + ":80", "10.0.0.1:80", "192.168.1.1:80", "172.17.0.1:80", "100.96.0.1:80"} {
		if r := s.probe(t, n, map[string]any{"op": "dial", "addr": addr}); !r.Refused {
			t.Errorf("%s: %+v (want refused)", addr, r)
		}
	}
	// A name that resolves to the host gets no answer (rebinding).
	if r := s.probe(t, n, map[string]any{"op": "resolve", "name": "rebind.test"}); len(r.IPs) > 0 {
		t.Errorf("rebind.test resolved: %+v", r)
	}
	// Permissive reaches public addresses without a name.
	if r := s.probe(t, n, map[string]any{"op": "dial", "addr": NeverIP + ":443"}); r.Err != "" {
		t.Errorf("permissive to a public address: %+v", r)
	}
	if got := s.w.Leaks() - before; got != 0 {
		t.Fatalf("%d connections reached the host or metadata listeners", got)
	}
}

func (s *netSuite) ignoresProxy(t *testing.T) {
	n := s.sandbox(t, api.CreateSandboxRequest{Network: allow("allowed.test")})
	proxy := "http://" + AllowedIP + ":80"
	env := []string{"HTTPS_PROXY=" + proxy, "HTTP_PROXY=" + proxy, "ALL_PROXY=" + proxy, "https_proxy=" + proxy}
	// The probe never looks at proxy variables.
	if r := s.probe(t, n, map[string]any{"op": "get", "url": "https://" + NeverIP + "/", "ca": s.worldCA}, env...); !r.Refused {
		t.Errorf("a client ignoring the proxy: %+v", r)
	}
	s.probe(t, n, map[string]any{"op": "resolve", "name": "allowed.test"})
	if r := s.probe(t, n, map[string]any{"op": "udp", "addr": AllowedIP + ":7"}); r.Err == "" {
		t.Errorf("UDP to a resolved name's address without a rule: %+v", r)
	}
}

func (s *netSuite) secret(t *testing.T) {
	ctx := context.Background()
	value := s.w.SecretValue
	if _, err := s.c.SetSecret(ctx, "IT_API_KEY", value); err != nil {
		t.Fatal(err)
	}
	// A grep pattern that matches the value but is not it, so that no
	// command line in the sandbox holds the value.
	pattern := value[:3] + "[" + value[3:4] + "]" + value[4:]
	n := s.sandbox(t, api.CreateSandboxRequest{Network: allow("other.test"), Secrets: []string{"IT_API_KEY:allowed.test"}})
	// The client sends the placeholder; the server receives the key.
	r := s.probe(t, n, map[string]any{"op": "get", "url": "https://allowed.test/", "ca": "/.agentkernel/net/ca-bundle.pem",
		"auth": "Bearer agentkernel-placeholder-IT_API_KEY"})
	if r.Status != 200 || r.Body != "hello allowed.test auth=Bearer "+value {
		t.Fatalf("bound request: %+v", r)
	}
	// The system trust store has the sandbox's CA ($SSL_CERT_FILE too).
	res := s.sh(t, n, `curl -sS -m 10 -H "Authorization: Bearer $IT_API_KEY" https://allowed.test/ | grep -cE '`+pattern+`'; `+
		`test "$SSL_CERT_FILE" = /.agentkernel/net/ca-bundle.pem && echo env-ok`)
	if res.Stdout != "1\nenv-ok\n" {
		t.Fatalf("curl with the system trust store: %+v", res)
	}
	// A host without a binding is not intercepted: the test CA verifies
	// it and the placeholder arrives as sent.
	r = s.probe(t, n, map[string]any{"op": "get", "url": "https://other.test/", "ca": s.worldCA, "auth": "Bearer x"})
	if r.Status != 200 || r.Body != "hello other.test auth=Bearer x" {
		t.Fatalf("unbound host: %+v", r)
	}
	res = s.sh(t, n, "env")
	if !strings.Contains(res.Stdout, "IT_API_KEY=agentkernel-placeholder-IT_API_KEY") || strings.Contains(res.Stdout, value) {
		t.Fatalf("env: %q", res.Stdout)
	}
	// With a background process running: every process's environment,
	// then every file, holds only the placeholder.
	s.sh(t, n, "sleep 600 >/dev/null 2>&1 &")
	res = s.sh(t, n, `for f in /proc/[0-9]*/environ; do tr '\0' '\n' <"$f"; echo; done >/tmp/envs; `+
		`grep -c IT_API_KEY=agentkernel-placeholder /tmp/envs; grep -cE '`+pattern+`' /tmp/envs; rm /tmp/envs`)
	if f := strings.Fields(res.Stdout); len(f) != 2 || f[0] == "0" || f[1] != "0" {
		t.Fatalf("/proc/*/environ: %+v", res)
	}
	// The same grep finds a control file, so it did search everywhere.
	res = s.sh(t, n, "echo control-c0ntr0l >/tmp/control; grep -rlsE -D skip -e '"+pattern+"' -e 'control-c[0]ntr0l' / --exclude-dir=proc --exclude-dir=sys")
	if strings.TrimSpace(res.Stdout) != "/tmp/control" {
		t.Fatalf("files holding the secret (only /tmp/control expected): %q", res.Stdout)
	}
	events, err := s.c.NetworkLog(ctx, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	injected := false
	for _, ev := range events {
		injected = injected || (ev.Kind == "request" && ev.SecretInjected && ev.Name == "allowed.test" && ev.Status == 200)
	}
	if !injected {
		t.Errorf("no audited request with the secret injected: %+v", events)
	}
	info, err := s.c.SandboxNetwork(ctx, n)
	if err != nil || len(info.Secrets) != 1 || info.Secrets[0].Host != "allowed.test" || info.Secrets[0].Header != "Authorization" {
		t.Errorf("network info secrets: %+v %v", info.Secrets, err)
	}
}

func (s *netSuite) publish(t *testing.T) {
	ctx := context.Background()
	n := s.sandbox(t, api.CreateSandboxRequest{Publish: []string{"0:8080"}})
	if _, err := s.c.ExecDetached(ctx, n, api.ExecRequest{Command: []string{s.dir + "/probe", `{"op":"serve","addr":":8080"}`}}); err != nil {
		t.Fatal(err)
	}
	info, err := s.c.SandboxNetwork(ctx, n)
	if err != nil || len(info.Published) != 1 || !strings.HasPrefix(info.Published[0].Address, "127.0.0.1:") {
		t.Fatalf("published: %+v %v", info.Published, err)
	}
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		c, err := s.w.Dial(info.Published[0].Address)
		if err != nil {
			continue
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "GET / HTTP/1.0\r\n\r\n")
		b := make([]byte, 4096)
		k, _ := c.Read(b)
		c.Close()
		if body = string(b[:k]); strings.Contains(body, "hello from the sandbox") {
			return
		}
	}
	t.Fatalf("published port answered %q", body)
}

func (s *netSuite) livePolicy(t *testing.T) {
	ctx := context.Background()
	n := s.sandbox(t, api.CreateSandboxRequest{})
	if r := s.probe(t, n, map[string]any{"op": "resolve", "name": "other.test"}); !r.NotFound {
		t.Fatalf("before: %+v", r)
	}
	info, err := s.c.SetSandboxNetwork(ctx, n, api.NetworkPolicy{Allow: []string{"other.test"}, AllowCIDRs: []string{NeverIP + ":443"}})
	if err != nil || !info.Running || info.Policy.Profile != "moderate" {
		t.Fatalf("set: %+v %v", info, err)
	}
	if r := s.probe(t, n, map[string]any{"op": "get", "url": "https://other.test/", "ca": s.worldCA}); r.Status != 200 {
		t.Fatalf("after allowing other.test: %+v", r)
	}
	if r := s.probe(t, n, map[string]any{"op": "dial", "addr": NeverIP + ":443"}); r.Err != "" {
		t.Fatalf("after allowing %s:443: %+v", NeverIP, r)
	}
	if _, err := s.c.SetSandboxNetwork(ctx, n, api.NetworkPolicy{Allow: []string{"bad name!"}}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("invalid policy: %v", err)
	}
	// The change survives a restart.
	if _, err := s.c.StopSandbox(ctx, n); err != nil {
		t.Fatal(err)
	}
	if info, err := s.c.SandboxNetwork(ctx, n); err != nil || info.Running || info.Policy.Allow[0] != "other.test" {
		t.Fatalf("stopped: %+v %v", info, err)
	}
	if _, err := s.c.StartSandbox(ctx, n); err != nil {
		t.Fatal(err)
	}
	if r := s.probe(t, n, map[string]any{"op": "resolve", "name": "other.test"}); r.NotFound {
		t.Fatalf("after restart: %+v", r)
	}
	if _, err := s.c.SetSandboxNetwork(ctx, n, api.NetworkPolicy{}); err != nil {
		t.Fatal(err)
	}
	if r := s.probe(t, n, map[string]any{"op": "resolve", "name": "other.test"}); !r.NotFound {
		t.Fatalf("after taking it back: %+v", r)
	}
	events, err := s.c.NetworkLog(ctx, n, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var allowed, denied, closed bool
	for _, ev := range events {
		allowed = allowed || (ev.Kind == "dns" && ev.Name == "other.test" && ev.Allowed && ev.Rule == "allow:other.test")
		denied = denied || (ev.Kind == "dns" && ev.Name == "other.test" && !ev.Allowed)
		closed = closed || (ev.Kind == "close" && ev.BytesDown > 0)
	}
	if !allowed || !denied || !closed {
		t.Fatalf("audit log lacks events (allowed dns %v, denied dns %v, close %v): %+v", allowed, denied, closed, events)
	}
}

func (s *netSuite) restrictive(t *testing.T) {
	n := s.sandbox(t, api.CreateSandboxRequest{Profile: "restrictive"})
	if r := s.sh(t, n, ListInterfaces); strings.TrimSpace(r.Stdout) != "lo" {
		t.Fatalf("restrictive interfaces: %q", r.Stdout)
	}
	_, err := s.c.CreateSandbox(context.Background(), api.CreateSandboxRequest{Name: s.w.Prefix + "net-bad", Backend: s.w.Backend,
		Profile: "restrictive", Network: allow("allowed.test")})
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "no network") {
		t.Fatalf("restrictive with a network policy: %v", err)
	}
}
