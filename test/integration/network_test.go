package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/netgw/dnstest"
	"github.com/agentkernel/agentkernel/internal/testutil"
	"github.com/agentkernel/agentkernel/test/conformance"
)

// The network suite's "internet" is a network namespace the test makes
// (the world), in which a daemon of its own runs: its gateways dial from
// there, and nothing reaches the host's network.
//
//   - lo routes 203.0.113.0/24 locally: the HTTPS/HTTP servers listen on
//     .10 (allowed.test, other.test, blocked.test resolve to it) and .11
//     (never resolved by any name).
//   - 198.51.100.1/24 and 169.254.169.254 on lo stand for the host's own
//     address (with its LAN) and cloud metadata; both have a listener, so
//     a leak would connect.
//   - dnstest on the world's 127.0.0.1 is the upstream resolver, named in
//     the home's daemon.toml, which also makes the gateways trust the
//     world's CA for the hosts they intercept.
//
// The sandbox runs a static probe (source below) bound in at /probe.

const (
	allowedIP = conformance.AllowedIP
	neverIP   = conformance.NeverIP
	hostIP    = conformance.HostIP
	metaIP    = conformance.MetaIP
)

type netWorld struct {
	ns       *os.File
	e        *env
	probeDir string
	// leaks counts connections accepted on the host and metadata
	// listeners.
	leaks atomic.Int64
	// git, when set, serves the paths under /git/ of the world's HTTP
	// servers (TestSourceClone's repositories).
	git atomic.Pointer[http.Handler]
}

// inWorld runs f on a thread inside the world's namespace: sockets opened
// and processes started by f live there.
func (w *netWorld) inWorld(t testing.TB, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := unix.Setns(int(w.ns.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer func() {
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	f()
}

// newNetWorld builds a world and starts its daemon with serveArgs (see
// startDaemon).
func newNetWorld(t *testing.T, serveArgs ...string) *netWorld {
	t.Helper()
	w := &netWorld{e: newEnv(t), probeDir: t.TempDir(), ns: testutil.NewNetNS(t)}
	caCert, caKey := testCA(t)
	caFile := filepath.Join(w.probeDir, "world-ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o644)
	leaf := testLeaf(t, caCert, caKey, "allowed.test", "other.test", "blocked.test", "never.test")
	echo := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if g := w.git.Load(); g != nil && strings.HasPrefix(r.URL.Path, "/git/") {
			(*g).ServeHTTP(rw, r)
			return
		}
		fmt.Fprintf(rw, "hello %s auth=%s", r.Host, r.Header.Get("Authorization"))
	})
	var dnsAddr netip.AddrPort
	w.inWorld(t, func() {
		for _, args := range [][]string{
			{"link", "set", "lo", "up"},
			{"route", "add", "local", "203.0.113.0/24", "dev", "lo"},
			{"addr", "add", hostIP + "/24", "dev", "lo"},
			{"addr", "add", metaIP + "/32", "dev", "lo"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v %s", args, err, out)
			}
		}
		for _, ip := range []string{allowedIP, neverIP} {
			serve(t, tlsListen(t, ip+":443", leaf), echo)
			serve(t, listen(t, ip+":80"), echo)
		}
		pc, err := net.ListenPacket("udp4", allowedIP+":7")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() { // UDP echo
			b := make([]byte, 2048)
			for {
				k, from, err := pc.ReadFrom(b)
				if err != nil {
					return
				}
				pc.WriteTo(b[:k], from)
			}
		}()
		for _, addr := range []string{hostIP + ":80", metaIP + ":80"} {
			ln := listen(t, addr)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					w.leaks.Add(1)
					c.Close()
				}
			}()
		}
		a := netip.MustParseAddr(allowedIP)
		dnsAddr = dnstest.Start(t, map[string][]netip.Addr{
			"allowed.test": {a}, "other.test": {a}, "blocked.test": {a},
			"never.test": {netip.MustParseAddr(neverIP)}, "rebind.test": {netip.MustParseAddr(hostIP)},
			"registry.npmjs.org": {a}, // the build network's registry (buildNetwork)
		}).Addr
	})
	os.WriteFile(filepath.Join(w.e.home, "daemon.toml"), []byte(fmt.Sprintf(
		"[network]\nresolvers = [%q]\nupstream_ca_files = [%q]\n", dnsAddr.String(), caFile)), 0o600)
	conformance.BuildProbe(t, w.probeDir)
	w.startDaemon(t, serveArgs...)
	return w
}

// startDaemon starts the world's daemon: serve with args, --no-tcp when
// none are given.
func (w *netWorld) startDaemon(t *testing.T, args ...string) {
	t.Helper()
	if len(args) == 0 {
		args = []string{"--no-tcp"}
	}
	os.MkdirAll(w.e.home, 0o700)
	logf, err := os.OpenFile(filepath.Join(w.e.home, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(akBin, append([]string{"serve"}, args...)...)
	cmd.Env = w.e.environ()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	w.inWorld(t, func() {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	})
	go cmd.Wait()
	if !waitFor(20*time.Second, func() bool { return socketAnswers(w.e.socket()) }) {
		cmd.Process.Kill()
		t.Fatal("the world's daemon did not come up")
	}
}

// TestNetwork runs the network suite (test/conformance) on the container
// backend in the world, then what only the real CLI and the host can show.
func TestNetwork(t *testing.T) {
	w, value := runNetworkSuite(t, false)
	t.Run("CLI", func(t *testing.T) { cliNetwork(t, w) })
	t.Run("BuildNetwork", func(t *testing.T) { buildNetwork(t, w) })
	t.Run("SecretNotOnHost", func(t *testing.T) { secretNotOnHost(t, w.e, value) })
}

// TestNetworkPooled runs the network suite on sandboxes claimed from warm
// pools (the suite sets them: the home has none), in a world of its own:
// a claim binds the policy and secrets to a sandbox that was started
// before them, and they must hold the same.
func TestNetworkPooled(t *testing.T) {
	w, value := runNetworkSuite(t, true)
	t.Run("SecretNotOnHost", func(t *testing.T) { secretNotOnHost(t, w.e, value) })
}

// runNetworkSuite builds a world and runs the network suite in it, on cold
// or pooled sandboxes; it returns the world and the suite's secret value.
func runNetworkSuite(t *testing.T, pooled bool) (*netWorld, string) {
	requireEnv(t)
	for _, bin := range []string{"ip", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (apt: iproute2, curl)", bin)
		}
	}
	w := newNetWorld(t)
	value := newSecretValue()
	conformance.RunNetwork(t, w.e.client(t), w.conformance(t, value, pooled))
	return w, value
}

func newSecretValue() string {
	var rb [12]byte
	rand.Read(rb[:])
	return "sk-it-" + hex.EncodeToString(rb[:])
}

// conformance is the suite's view of the world.
func (w *netWorld) conformance(t *testing.T, value string, pooled bool) conformance.NetworkWorld {
	return conformance.NetworkWorld{
		Backend: "container", Prefix: "it-", ProbeDir: w.probeDir, SecretValue: value, Pooled: pooled,
		Leaks: w.leaks.Load,
		Dial: func(addr string) (c net.Conn, err error) {
			w.inWorld(t, func() { c, err = net.DialTimeout("tcp", addr, time.Second) })
			return c, err
		},
	}
}

// cliNetwork drives the network commands of the real CLI.
func cliNetwork(t *testing.T, w *netWorld) {
	e := w.e
	if r := e.akIn(t, strings.NewReader("cli-value\n"), "secret", "set", "CLI_KEY"); r.code != 0 || strings.Contains(r.stdout+r.stderr, "cli-value") {
		t.Fatalf("%v", r)
	}
	if r := e.ok(t, "secret", "list"); !strings.Contains(r.stdout, "CLI_KEY") || strings.Contains(r.stdout, "cli-value") {
		t.Fatalf("secret list: %v", r)
	}
	if r := e.ok(t, "secret", "get", "CLI_KEY"); r.stdout != "cli-value\n" {
		t.Fatalf("secret get: %v", r)
	}
	if r := e.ak(t, "sandbox", "create", "clibad", "--secret", "CLI_KEY=cli-value:allowed.test"); r.code == 0 || strings.Contains(r.stderr, "cli-value") {
		t.Fatalf("a value on the command line: %v", r)
	}
	e.create(t, "clinet", "--allow", "allowed.test", "--secret", "CLI_KEY:allowed.test:X-Key", "--publish", "0:9000",
		"--dir", w.probeDir+":/probe:ro")
	out := e.ok(t, "sandbox", "network", "clinet").stdout
	for _, want := range []string{"gateway (running", "allowed.test", "$CLI_KEY -> allowed.test (X-Key)", "127.0.0.1:"} {
		if !strings.Contains(out, want) {
			t.Errorf("sandbox network: no %q in\n%s", want, out)
		}
	}
	out = e.ok(t, "sandbox", "network", "clinet", "--allow", "other.test", "--remove", "allowed.test").stdout
	if !strings.Contains(out, "other.test") || !strings.Contains(out, "allowed.test") { // the secret's host stays allowed
		t.Errorf("after --allow/--remove:\n%s", out)
	}
	e.ok(t, "exec", "clinet", "--", "curl", "-sS", "-m", "10", "--cacert", "/probe/world-ca.pem", "https://other.test/")
	e.ak(t, "exec", "clinet", "--", "curl", "-sS", "-m", "5", "http://"+conformance.HostIP+"/")
	out = e.ok(t, "audit", "clinet").stdout
	for _, want := range []string{"other.test", "allowed", "denied", "forbidden:198.51.100."} {
		if !strings.Contains(out, want) {
			t.Errorf("audit: no %q in\n%s", want, out)
		}
	}
	if out := e.ok(t, "audit", "clinet", "--denied").stdout; strings.Contains(out, " allowed ") {
		t.Errorf("audit --denied shows allowed events:\n%s", out)
	}
	e.ok(t, "secret", "delete", "CLI_KEY")
	e.ok(t, "sandbox", "stop", "clinet")
	if r := e.ak(t, "sandbox", "start", "clinet"); r.code == 0 || !strings.Contains(r.stderr, "secret set CLI_KEY") {
		t.Errorf("start after its secret was deleted: %v", r)
	}
}

// secretNotOnHost: the secret the suite used is nowhere on the host in the
// clear: not in the home (vault, specs, logs, database) nor in the
// environment of the daemon or a supervisor.
// buildNetwork: a Dockerfile's RUN steps have no network unless the build
// names what they may reach (--allow, --preset), and then only that,
// through the step's gateway. The world's registry.npmjs.org stands for
// npm's registry.
func buildNetwork(t *testing.T, w *netWorld) {
	e := w.e
	busyboxBaseIn(t, e, "it-bn-base")
	// The build context holds the static probe (busybox's static wget
	// cannot resolve names), copied into each step's image.
	dir := t.TempDir()
	if b, err := os.ReadFile(filepath.Join(w.probeDir, "probe")); err != nil || os.WriteFile(filepath.Join(dir, "probe"), b, 0o755) != nil {
		t.Fatalf("probe: %v", err)
	}
	df := func(name, url string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("FROM it-bn-base\nCOPY probe /probe\n"+
			`RUN /probe '{"Op":"get","URL":"`+url+`"}' > /got && grep -q '"status":200' /got`+"\n"), 0o644)
		return p
	}
	fetch := df("Dockerfile.fetch", "http://allowed.test/")
	npm := df("Dockerfile.npm", "http://registry.npmjs.org/left-pad")
	t.Cleanup(func() {
		for _, n := range []string{"it-bn-off", "it-bn-allow", "it-bn-npm", "it-bn-npm-other"} {
			e.ak(t, "image", "rm", n)
		}
	})
	if r := e.ak(t, "build", "-q", "--no-cache", "-t", "it-bn-off", "-f", fetch, dir); r.code == 0 {
		t.Errorf("a RUN step without a build policy reached the network: %v", r)
	}
	e.ok(t, "build", "-q", "--no-cache", "--allow", "allowed.test", "-t", "it-bn-allow", "-f", fetch, dir)
	if r := e.ok(t, "run", "--image", "it-bn-allow", "--", "cat", "/got"); !strings.Contains(r.stdout, `"body":"hello allowed.test auth="`) {
		t.Errorf("what the allowed RUN fetched: %q", r.stdout)
	}
	e.ok(t, "build", "-q", "--no-cache", "--preset", "npm", "-t", "it-bn-npm", "-f", npm, dir)
	if r := e.ok(t, "run", "--image", "it-bn-npm", "--", "cat", "/got"); !strings.Contains(r.stdout, `"body":"hello registry.npmjs.org auth="`) {
		t.Errorf("what the npm RUN fetched: %q", r.stdout)
	}
	// The npm preset is npm's registry only.
	if r := e.ak(t, "build", "-q", "--no-cache", "--preset", "npm", "-t", "it-bn-npm-other", "-f", fetch, dir); r.code == 0 {
		t.Errorf("--preset npm reached another host: %v", r)
	}
	if w.leaks.Load() != 0 {
		t.Errorf("%d connections reached the host or metadata listeners", w.leaks.Load())
	}
}

func secretNotOnHost(t *testing.T, e *env, value string) {
	filepath.Walk(e.home, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() < 64<<20 {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(value)) {
				t.Errorf("%s holds the secret in the clear", p)
			}
		}
		return nil
	})
	for _, pid := range e.processes() {
		for _, f := range []string{"environ", "cmdline"} {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f)); bytes.Contains(b, []byte(value)) {
				t.Errorf("process %d (%s): the secret is in its %s", pid, cmdline(pid), f)
			}
		}
	}
}

func listen(t *testing.T, addr string) net.Listener {
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func tlsListen(t *testing.T, addr string, cert tls.Certificate) net.Listener {
	return tls.NewListener(listen(t, addr), &tls.Config{Certificates: []tls.Certificate{cert}})
}

func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func testCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "integration world CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(2 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func testLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, names ...string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(2 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
