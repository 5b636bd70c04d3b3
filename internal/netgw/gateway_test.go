package netgw

import (
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
)

func TestAllowedNameOverHTTPS(t *testing.T) {
	w := newWorld(t)
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	r := s.do(helperReq{Op: "resolve", Name: "allowed.test"})
	if r.Err != "" || len(r.IPs) != 1 || r.IPs[0] != w.allowedIP.String() {
		t.Fatalf("resolve allowed.test: %+v", r)
	}
	r = s.do(helperReq{Op: "get", URL: "https://allowed.test/", CA: w.caFile})
	if r.Status != 200 || r.Body != "hello allowed.test via HTTP/1.1" {
		t.Fatalf("GET https://allowed.test/: %+v", r)
	}
	r = s.do(helperReq{Op: "get", URL: "http://allowed.test/"})
	if r.Status != 200 || !strings.HasPrefix(r.Body, "hello allowed.test") {
		t.Fatalf("GET http://allowed.test/: %+v", r)
	}
	ev := s.waitEvent("close of the HTTPS flow", func(e Event) bool {
		return e.Kind == "close" && e.Port == 443 && e.Name == "allowed.test"
	})
	if !ev.Allowed || ev.Rule != "name:allowed.test" || ev.BytesUp == 0 || ev.BytesDown == 0 || ev.IP != w.allowedIP {
		t.Fatalf("close event: %+v", ev)
	}
	s.waitEvent("dns answer", func(e Event) bool {
		return e.Kind == "dns" && e.Name == "allowed.test" && e.Allowed && e.Rule == "allow:allowed.test" && len(e.IPs) == 1
	})
}

func TestBlockedNameNXDOMAIN(t *testing.T) {
	w := newWorld(t)
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	for _, name := range []string{"other.test", "never.test", "example.com"} {
		r := s.do(helperReq{Op: "resolve", Name: name})
		if !r.NotFound {
			t.Errorf("resolve %s: %+v, want NXDOMAIN", name, r)
		}
	}
	s.waitEvent("dns denial", func(e Event) bool {
		return e.Kind == "dns" && e.Name == "other.test" && !e.Allowed && e.RCode == "NameError"
	})
}

func TestDirectConnectionRefused(t *testing.T) {
	w := newWorld(t)
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	for _, addr := range []string{
		w.neverIP.String() + ":443",   // a live server never resolved
		w.allowedIP.String() + ":443", // not resolved yet either
		"203.0.113.5:443",             // a public address
	} {
		r := s.do(helperReq{Op: "dial", Addr: addr, N: 1})
		if r.Refused != 1 || r.Elapsed > time.Second {
			t.Errorf("dial %s: %+v, want refused at once", addr, r)
		}
	}
	ev := s.waitEvent("denial", func(e Event) bool { return e.Kind == "connect" && e.IP == w.neverIP })
	if ev.Allowed || ev.Rule != "unresolved" {
		t.Fatalf("denial event: %+v", ev)
	}
}

func TestSNIAndHostMismatch(t *testing.T) {
	w := newWorld(t)
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	// The sandbox resolves allowed.test, then asks that address for
	// other.test (which the server would serve: same address, valid cert).
	if r := s.do(helperReq{Op: "resolve", Name: "allowed.test"}); r.Err != "" {
		t.Fatal(r.Err)
	}
	url := "https://" + w.allowedIP.String() + "/"
	r := s.do(helperReq{Op: "get", URL: url, SNI: "other.test", CA: w.caFile})
	if r.Status != 0 || !r.Reset {
		t.Fatalf("SNI other.test to allowed.test's address: %+v, want reset", r)
	}
	s.waitEvent("sni-mismatch", func(e Event) bool {
		return e.Kind == "connect" && !e.Allowed && e.Rule == "sni-mismatch" && e.Name == "other.test"
	})
	// The same address with the right SNI works, even when dialled by IP.
	r = s.do(helperReq{Op: "get", URL: url, SNI: "allowed.test", CA: w.caFile})
	if r.Status != 200 || r.Body != "hello "+w.allowedIP.String()+" via HTTP/1.1" {
		t.Fatalf("SNI allowed.test by address: %+v", r)
	}
	// Plain HTTP: the Host header must match.
	r = s.do(helperReq{Op: "get", URL: "http://allowed.test/", Host: "other.test"})
	if r.Status != 0 || !r.Reset {
		t.Fatalf("Host other.test: %+v, want reset", r)
	}
	s.waitEvent("host-mismatch", func(e Event) bool { return e.Rule == "host-mismatch" && e.Name == "other.test" })
	r = s.do(helperReq{Op: "get", URL: "http://" + w.allowedIP.String() + "/"})
	if r.Status != 0 {
		t.Fatalf("Host as an address: %+v, want refused", r)
	}
	s.waitEvent("malformed http", func(e Event) bool { return e.Rule == "malformed-http" })
}

func TestForbiddenAddressesRefused(t *testing.T) {
	w := newWorld(t)
	// Even the permissive profile, and a rule covering everything, never
	// reach forbidden ranges.
	s := newSandbox(t, w, Config{Policy: policy.Policy{Profile: policy.Permissive,
		Rules: []policy.Rule{{CIDR: netip.MustParsePrefix("0.0.0.0/0")}}}})
	for addr, rule := range map[string]string{
		"169.254.169.254:80":                "forbidden:169.254.0.0/16",
		"100.100.100.200:80":                "forbidden:100.64.0.0/10",
		"168.63.129.16:80":                  "forbidden:168.63.129.16/32",
		"10.0.0.1:443":                      "forbidden:10.0.0.0/8",
		"192.168.1.1:22":                    "forbidden:192.168.0.0/16",
		"198.51.100.1:22":                   "", // the host's own address
		"198.51.100.77:443":                 "", // the host's LAN
		DefaultGatewayAddr.String() + ":22": "forbidden:100.64.0.0/10",
	} {
		r := s.do(helperReq{Op: "dial", Addr: addr, N: 1})
		if r.Refused != 1 || r.Elapsed > time.Second {
			t.Errorf("dial %s: %+v, want refused at once", addr, r)
		}
		ip := netip.MustParseAddrPort(addr).Addr()
		ev := s.waitEvent("denial of "+addr, func(e Event) bool { return e.Kind == "connect" && e.IP == ip })
		if ev.Allowed || !strings.HasPrefix(ev.Rule, "forbidden:") || (rule != "" && ev.Rule != rule) {
			t.Errorf("%s: event %+v, want rule %q", addr, ev, rule)
		}
	}
	// The permissive profile does reach a public address.
	r := s.do(helperReq{Op: "get", URL: "https://" + w.neverIP.String() + "/", SNI: "never.test", CA: w.caFile})
	if r.Status != 200 {
		t.Fatalf("permissive to a public address: %+v", r)
	}
	// And DNS never hands out a forbidden address, even for an allowed name.
	if r := s.do(helperReq{Op: "resolve", Name: "rebind.test"}); len(r.IPs) != 0 {
		t.Fatalf("rebind.test resolved to %v", r.IPs)
	}
	s.waitEvent("rebind", func(e Event) bool { return e.Kind == "dns" && e.Rule == "rebind:10.0.0.0/8" && !e.Allowed })
}

// TestProxyVariablesAreNotTheBoundary runs curl, a real program, inside the
// sandbox: with proxy variables it fails (the "proxy" is not reachable);
// told to ignore them it reaches allowed.test and nothing else.
func TestProxyVariablesAreNotTheBoundary(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("needs curl (apt package curl)")
	}
	w := newWorld(t)
	s := newSandbox(t, w, Config{Policy: allowPolicy("allowed.test")})
	curlIn := func(env []string, args ...string) (string, error) {
		cmd := exec.Command("ip", append([]string{"netns", "exec", s.ns, curl, "-sS", "--max-time", "5", "--cacert", w.caFile}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	proxyEnv := []string{"PATH=/usr/bin:/bin", "https_proxy=http://192.0.2.250:3128", "HTTPS_PROXY=http://192.0.2.250:3128"}
	if out, err := curlIn(proxyEnv, "https://allowed.test/"); err == nil {
		t.Fatalf("curl through an unreachable proxy succeeded: %s", out)
	}
	if out, err := curlIn(proxyEnv, "--noproxy", "*", "https://allowed.test/"); err != nil || out != "hello allowed.test via HTTP/1.1" {
		t.Fatalf("curl ignoring the proxy to allowed.test: %v %s", err, out)
	}
	for _, url := range []string{"https://never.test/", "https://" + w.neverIP.String() + "/", "http://198.51.100.1/"} {
		start := time.Now()
		if out, err := curlIn(proxyEnv, "--noproxy", "*", "-k", url); err == nil {
			t.Errorf("curl ignoring the proxy reached %s: %s", url, out)
		} else if time.Since(start) > 3*time.Second {
			t.Errorf("curl to %s took %v: a refusal must be immediate", url, time.Since(start))
		}
	}
	// Bypassing the gateway's DNS does not help either: no resolver but
	// the gateway is reachable.
	r := s.do(helperReq{Op: "udp", Addr: "203.0.113.250:53", Send: []byte("query")})
	if r.Refused != 1 {
		t.Fatalf("UDP to another resolver: %+v, want ICMP unreachable", r)
	}
}

// TestOpaquePortAndTCPDNS covers a domain port without inspection (like 22
// for git over SSH), an upstream refusal relayed as a refusal, and DNS over
// TCP at the gateway.
func TestOpaquePortAndTCPDNS(t *testing.T) {
	w := newWorld(t)
	echo, err := net.Listen("tcp4", netip.AddrPortFrom(w.allowedIP, 2222).String())
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	s := newSandbox(t, w, Config{Policy: policy.Policy{Allow: []string{"allowed.test"}, DomainPorts: []uint16{443, 2222, 2223}}})
	// Force the sandbox's resolver onto TCP.
	os.WriteFile(worldResolvConf, []byte("nameserver "+DefaultGatewayAddr.String()+"\noptions use-vc\n"), 0o644)
	defer os.WriteFile(worldResolvConf, []byte(defaultResolvConf), 0o644)
	if r := s.do(helperReq{Op: "resolve", Name: "allowed.test"}); len(r.IPs) != 1 {
		t.Fatalf("resolve over TCP: %+v", r)
	}
	if r := s.do(helperReq{Op: "resolve", Name: "other.test"}); !r.NotFound {
		t.Fatalf("blocked name over TCP: %+v", r)
	}
	r := s.do(helperReq{Op: "raw", Addr: w.allowedIP.String() + ":2222", Send: []byte("SSH-2.0-test\r\n"), Timeout: time.Second})
	if r.Body != "SSH-2.0-test\r\n" {
		t.Fatalf("opaque port 2222: %+v", r)
	}
	// Nothing listens on 2223 upstream: the sandbox sees a refusal, not a
	// connection that drops.
	if r := s.do(helperReq{Op: "dial", Addr: w.allowedIP.String() + ":2223", N: 1}); r.Refused != 1 {
		t.Fatalf("upstream refusal on 2223: %+v", r)
	}
	if r := s.do(helperReq{Op: "dial", Addr: w.allowedIP.String() + ":2224", N: 1}); r.Refused != 1 {
		t.Fatalf("port not in DomainPorts: %+v", r)
	}
	s.waitEvent("port-not-allowed", func(e Event) bool { return e.Rule == "port-not-allowed" && e.Port == 2224 })
	if r := s.do(helperReq{Op: "dial", Addr: w.neverIP.String() + ":2222", N: 1}); r.Refused != 1 {
		t.Fatalf("unresolved address on an opaque port: %+v", r)
	}
}
