package netgw

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
)

func TestPolicyChangeOnTheFly(t *testing.T) {
	w := newWorld(t)
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	if r := s.do(helperReq{Op: "resolve", Name: "other.test"}); !r.NotFound {
		t.Fatalf("other.test before the change: %+v", r)
	}
	if r := s.do(helperReq{Op: "get", URL: "https://allowed.test/", CA: w.caFile}); r.Status != 200 {
		t.Fatalf("allowed.test before the change: %+v", r)
	}
	if err := s.gw.SetPolicy(policy.Policy{Allow: []string{"other.test", "*.wild.test"}}); err != nil {
		t.Fatal(err)
	}
	if got := s.gw.Policy().Allow; len(got) != 2 {
		t.Fatalf("Policy() = %v", got)
	}
	if r := s.do(helperReq{Op: "get", URL: "https://other.test/", CA: w.caFile}); r.Status != 200 || r.Body != "hello other.test via HTTP/1.1" {
		t.Fatalf("other.test after the change: %+v", r)
	}
	if r := s.do(helperReq{Op: "get", URL: "https://a.wild.test/", CA: w.caFile}); r.Status != 200 {
		t.Fatalf("a.wild.test after the change: %+v", r)
	}
	// allowed.test's address is still remembered (other.test shares it),
	// but allowed.test itself is no longer allowed: SNI allowed.test fails.
	r := s.do(helperReq{Op: "get", URL: "https://" + w.allowedIP.String() + "/", SNI: "allowed.test", CA: w.caFile})
	if r.Status != 0 || !r.Reset {
		t.Fatalf("SNI allowed.test after it was removed: %+v", r)
	}
	if r := s.do(helperReq{Op: "resolve", Name: "allowed.test"}); !r.NotFound {
		t.Fatalf("allowed.test after the change: %+v", r)
	}
	// Restrictive: nothing at all.
	if err := s.gw.SetPolicy(policy.Policy{Profile: policy.Restrictive}); err != nil {
		t.Fatal(err)
	}
	if r := s.do(helperReq{Op: "dial", Addr: w.allowedIP.String() + ":443", N: 1}); r.Refused != 1 {
		t.Fatalf("restrictive: %+v", r)
	}
	// An invalid policy is refused and leaves the old one.
	if err := s.gw.SetPolicy(policy.Policy{Profile: "wide-open"}); err == nil {
		t.Fatal("SetPolicy accepted an unknown profile")
	}
	if s.gw.Policy().Profile != policy.Restrictive {
		t.Fatal("invalid SetPolicy replaced the policy")
	}
}

func TestUDPOnlyByRule(t *testing.T) {
	w := newWorld(t)
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	echo := w.udpEcho.String()
	// Resolving a name does not open UDP to it.
	s.do(helperReq{Op: "resolve", Name: "allowed.test"})
	if r := s.do(helperReq{Op: "udp", Addr: echo, Send: []byte("ping"), Timeout: 2 * time.Second}); r.Refused != 1 {
		t.Fatalf("UDP without a rule: %+v", r)
	}
	err := s.gw.SetPolicy(policy.Policy{Rules: []policy.Rule{{
		CIDR: netip.PrefixFrom(w.udpEcho.Addr(), 32), Ports: []uint16{w.udpEcho.Port()}, Proto: policy.UDP}}})
	if err != nil {
		t.Fatal(err)
	}
	r := s.do(helperReq{Op: "udp", Addr: echo, Send: []byte("ping")})
	if r.Body != "echo:ping" {
		t.Fatalf("UDP with a rule: %+v", r)
	}
	// The rule is UDP only.
	if r := s.do(helperReq{Op: "dial", Addr: echo, N: 1}); r.Refused != 1 {
		t.Fatalf("TCP under a UDP rule: %+v", r)
	}
}

func TestMalformedClientHello(t *testing.T) {
	w := newWorld(t)
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	s.do(helperReq{Op: "resolve", Name: "allowed.test"})
	addr := w.allowedIP.String() + ":443"
	for name, b := range map[string][]byte{
		"garbage":        []byte("\x16\x03\x01\x00\x05hello"),
		"not tls":        []byte("SSH-2.0-OpenSSH_9.6\r\n"),
		"huge record":    {0x16, 0x03, 0x01, 0xff, 0xff, 0x01},
		"no server name": {0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03, 32: 0, 38: 0, 39: 2, 40: 0x13, 41: 0x01, 42: 1, 43: 0, 51: 0},
	} {
		r := s.do(helperReq{Op: "raw", Addr: addr, Send: b, Timeout: 3 * time.Second})
		if r.Connected != 1 || !r.Reset || r.Body != "" {
			t.Errorf("%s: %+v, want a reset and no data", name, r)
		}
	}
	s.waitEvent("malformed", func(e Event) bool { return e.Rule == "malformed-clienthello" })
	if r := s.do(helperReq{Op: "get", URL: "https://allowed.test/", CA: w.caFile}); r.Status != 200 {
		t.Fatalf("gateway broken after malformed hellos: %+v", r)
	}
}

func TestSilentClientCut(t *testing.T) {
	w := newWorld(t)
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test"), SniffTimeout: 300 * time.Millisecond})
	s.do(helperReq{Op: "resolve", Name: "allowed.test"})
	r := s.do(helperReq{Op: "raw", Addr: w.allowedIP.String() + ":443", Timeout: 3 * time.Second})
	if r.Connected != 1 || !r.Reset || r.Elapsed > 2*time.Second {
		t.Fatalf("silent client: %+v, want reset after the sniff timeout", r)
	}
	s.waitEvent("no-clienthello", func(e Event) bool { return e.Rule == "no-clienthello" })
}

// TestFloodsDoNotHurt floods one sandbox's gateway with DNS queries and
// 10,000 connection attempts while a second sandbox keeps working, then
// checks the first still works too.
func TestFloodsDoNotHurt(t *testing.T) {
	w := newWorld(t)
	a := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	b := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	a.do(helperReq{Op: "resolve", Name: "allowed.test"})

	done := make(chan helperResp, 3)
	go func() { done <- a.do(helperReq{Op: "dnsflood", Addr: DefaultGatewayAddr.String() + ":53", N: 20000}) }()
	go func() {
		done <- a.do(helperReq{Op: "dial", Addr: w.neverIP.String() + ":443", N: 10000, Workers: 32, Timeout: 5 * time.Second})
	}()
	go func() {
		// Allowed flows too: they must be proxied and closed.
		done <- a.do(helperReq{Op: "dial", Addr: w.allowedIP.String() + ":443", N: 2000, Workers: 16, Timeout: 5 * time.Second})
	}()
	// Meanwhile the other sandbox's gateway answers promptly.
	for range 5 {
		r := b.do(helperReq{Op: "get", URL: "https://allowed.test/", CA: w.caFile})
		if r.Status != 200 || r.Elapsed > 2*time.Second {
			t.Fatalf("sandbox b during the flood: %+v", r)
		}
	}
	results := []helperResp{<-done, <-done, <-done}
	var refused, connected int
	for _, r := range results {
		refused += r.Refused
		connected += r.Connected
		if r.TimedOut > 0 || r.Other > 0 {
			t.Errorf("flood results: %+v", r)
		}
	}
	if refused != 10000 || connected < 2000 {
		t.Fatalf("flood: %d refused (want 10000), %d connected: %+v", refused, connected, results)
	}
	if st := a.gw.Stats(); st.DNSDropped == 0 || st.TCPDenied < 10000 {
		t.Fatalf("stats after the flood: %+v", st)
	}
	// Sandbox a recovers: after the rate limit refills it resolves again.
	time.Sleep(2 * time.Second)
	if r := a.do(helperReq{Op: "get", URL: "https://allowed.test/", CA: w.caFile}); r.Status != 200 {
		t.Fatalf("sandbox a after the flood: %+v", r)
	}
	// Denials were rate-limited in the audit log, with a count.
	if n := len(a.find(func(e Event) bool { return !e.Allowed && e.Kind == "connect" })); n > 2000 {
		t.Fatalf("%d denial events: the audit rate limit did not hold", n)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	w := newWorld(t)
	before := runtime.NumGoroutine()
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	s.do(helperReq{Op: "resolve", Name: "allowed.test"})
	// Leave a flow open across Close: a raw connection that says nothing.
	go s.do(helperReq{Op: "raw", Addr: w.allowedIP.String() + ":443", Timeout: 10 * time.Second})
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if err := s.gw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.gw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if err := s.gw.AttachTap(-1); err == nil {
		t.Fatal("AttachTap after Close succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	if r := s.do(helperReq{Op: "dial", Addr: w.allowedIP.String() + ":443", N: 1, Timeout: time.Second}); r.Connected != 0 {
		t.Fatalf("connection through a closed gateway: %+v", r)
	}
}
