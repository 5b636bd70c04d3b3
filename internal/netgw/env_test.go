package netgw

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/netgw/dnstest"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
)

// world is the test's "internet": HTTPS and HTTP servers on loopback
// addresses, a UDP echo server, and a DNS server that knows them.
type world struct {
	caFile string
	caPool *x509.CertPool
	dns    *dnstest.Server
	// ips the servers listen on: allowedIP serves allowed.test and
	// other.test; neverIP is never resolved by the sandbox.
	allowedIP, neverIP netip.Addr
	udpEcho            netip.AddrPort
}

// worldNet numbers the worlds; world n listens on 203.0.113.(2n) and
// 203.0.113.(2n+1), so that a test's servers never answer for another's.
var worldNet atomic.Int32

func newWorld(t *testing.T) *world {
	t.Helper()
	requireRoot(t)
	n := worldNet.Add(1)
	if n > 120 {
		t.Fatal("out of world addresses")
	}
	w := &world{
		allowedIP: netip.AddrFrom4([4]byte{203, 0, 113, byte(2 * n)}),
		neverIP:   netip.AddrFrom4([4]byte{203, 0, 113, byte(2*n + 1)}),
	}
	caCert, caKey := newCA(t)
	w.caPool = x509.NewCertPool()
	w.caPool.AddCert(caCert)
	w.caFile = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(w.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o644)
	leaf := newLeaf(t, caCert, caKey, "allowed.test", "other.test", "never.test", "*.wild.test")
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello %s via %s", r.Host, r.Proto)
		if k := r.Header.Get("X-Api-Key"); k != "" {
			fmt.Fprintf(rw, " key=%s", k)
		}
	})
	for _, ip := range []netip.Addr{w.allowedIP, w.neverIP} {
		ln, err := tls.Listen("tcp4", netip.AddrPortFrom(ip, 443).String(), &tls.Config{Certificates: []tls.Certificate{leaf}})
		if err != nil {
			t.Fatalf("listen 443: %v", err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		ln80, err := net.Listen("tcp4", netip.AddrPortFrom(ip, 80).String())
		if err != nil {
			t.Fatalf("listen 80: %v", err)
		}
		srv80 := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go srv80.Serve(ln80)
		t.Cleanup(func() { srv80.Close() })
	}
	pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(w.allowedIP, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	w.udpEcho = netip.MustParseAddrPort(pc.LocalAddr().String())
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	}()
	w.dns = dnstest.Start(t, map[string][]netip.Addr{
		"allowed.test": {w.allowedIP},
		"other.test":   {w.allowedIP},
		"a.wild.test":  {w.allowedIP},
		"never.test":   {w.neverIP},
		"rebind.test":  {netip.MustParseAddr("10.1.2.3")},
	})
	return w
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "netgw test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func newLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, names ...string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// sandbox is a network namespace whose only interface is a tap served by a
// Gateway.
type sandbox struct {
	t      *testing.T
	ns     string
	gw     *Gateway
	w      *world
	mu     sync.Mutex
	events []Event
}

var nsSeq atomic.Int32

// requireRoot skips the test unless it can create namespaces and taps.
func requireRoot(t *testing.T) {
	t.Helper()
	if !inWorld() {
		t.Skip("needs root, unshare and ip (apt: util-linux, iproute2): runs in a network namespace of its own with taps")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skip("needs /dev/net/tun")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (apt package iproute2)")
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newSandbox builds a namespace with a tap attached to a new Gateway whose
// config is cfg with the test's upstream DNS, forbidden ranges and audit.
func newSandbox(t *testing.T, w *world, cfg Config) *sandbox {
	t.Helper()
	requireRoot(t)
	n := nsSeq.Add(1)
	s := &sandbox{t: t, w: w, ns: fmt.Sprintf("akgw-%d-%d", os.Getpid(), n)}
	tapName := fmt.Sprintf("akgw%d", n)
	run(t, "ip", "netns", "add", s.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", s.ns).Run() })
	gwAddr := DefaultGatewayAddr // the world's resolv.conf names it
	if cfg.GatewayAddr.IsValid() && cfg.GatewayAddr != gwAddr {
		t.Fatal("tests use the default gateway address")
	}

	fd, err := CreateTap(tapName)
	if err != nil {
		t.Fatal(err)
	}
	run(t, "ip", "link", "set", "dev", tapName, "netns", s.ns)
	run(t, "ip", "-n", s.ns, "link", "set", "lo", "up")
	run(t, "ip", "-n", s.ns, "addr", "add", DefaultSandboxAddr.String()+"/30", "dev", tapName)
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = 1500
	}
	run(t, "ip", "-n", s.ns, "link", "set", tapName, "mtu", fmt.Sprint(mtu), "up")
	run(t, "ip", "-n", s.ns, "route", "add", "default", "via", gwAddr.String())

	cfg.Sandbox = s.ns
	cfg.Upstreams = []netip.AddrPort{w.dns.Addr}
	cfg.Audit = func(e Event) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.events = append(s.events, e)
	}
	s.gw, err = New(cfg)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { s.gw.Close() })
	if err := s.gw.AttachTap(fd); err != nil {
		t.Fatal(err)
	}
	return s
}

// do runs the helper inside the namespace, with proxy variables that a
// well-behaved program would use, to show they are not the enforcement.
func (s *sandbox) do(req helperReq) helperResp {
	s.t.Helper()
	r, err := runHelperCmd(exec.Command("ip", "netns", "exec", s.ns, os.Args[0]), req)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

// runHelperCmd runs cmd (the test binary, maybe behind ip netns exec) as the
// helper for req.
func runHelperCmd(cmd *exec.Cmd, req helperReq) (helperResp, error) {
	b, _ := json.Marshal(req)
	cmd.Env = append(os.Environ(), "NETGW_HELPER="+string(b),
		"HTTPS_PROXY=http://192.0.2.250:3128", "HTTP_PROXY=http://192.0.2.250:3128", "ALL_PROXY=socks5://192.0.2.250:1080")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return helperResp{}, fmt.Errorf("helper %s: %v\n%s", b, err, errb.String())
	}
	var resp helperResp
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		return helperResp{}, fmt.Errorf("helper %s: bad output %q: %v", b, out.String(), err)
	}
	return resp, nil
}

// find returns the audit events matching f.
func (s *sandbox) find(f func(Event) bool) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Event
	for _, e := range s.events {
		if f(e) {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits up to 5s for an audit event matching f.
func (s *sandbox) waitEvent(what string, f func(Event) bool) Event {
	s.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ev := s.find(f); len(ev) > 0 {
			return ev[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.t.Fatalf("no audit event %s; have %+v", what, s.events)
	return Event{}
}

func allowPolicy(names ...string) policy.Policy { return policy.Policy{Allow: names} }
