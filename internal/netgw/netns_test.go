package netgw

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNewNetns builds a sandbox namespace the way a supervisor does, serves
// it with a gateway, and checks what a program inside sees: its address,
// route and resolver work, and root in a child user namespace (as in a
// container sandbox) cannot reconfigure the namespace.
func TestNewNetns(t *testing.T) {
	w := newWorld(t)
	gw, err := New(Config{Sandbox: "netns", Policy: allowPolicy("allowed.test"), Upstreams: []netip.AddrPort{w.dns.Addr}, MTU: 65000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	start := time.Now()
	ns, fd, err := NewNetns("eth0", gw.Network())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NewNetns took %v", time.Since(start))
	defer ns.Close()
	if err := gw.AttachTap(fd); err != nil {
		t.Fatal(err)
	}
	// The caller's namespace is untouched.
	if _, err := net.InterfaceByName("eth0"); err == nil {
		t.Fatal("eth0 appeared in the caller's namespace")
	}
	inNS := func(args ...string) *exec.Cmd {
		cmd := exec.Command("nsenter", append([]string{"--net=/proc/self/fd/3"}, args...)...)
		cmd.ExtraFiles = []*os.File{ns}
		return cmd
	}
	out, err := inNS("ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "100.96.0.2/30") {
		t.Fatalf("eth0 address: %v %s", err, out)
	}
	out, _ = inNS("ip", "link", "show", "eth0").CombinedOutput()
	if !strings.Contains(string(out), "mtu 65000") || !strings.Contains(string(out), "UP") {
		t.Fatalf("eth0 link: %s", out)
	}
	out, _ = inNS("ip", "route").CombinedOutput()
	if !strings.Contains(string(out), "default via 100.96.0.1 dev eth0") {
		t.Fatalf("routes: %s", out)
	}
	out, _ = inNS("ip", "-6", "addr", "show", "dev", "eth0").CombinedOutput()
	if strings.Contains(string(out), "inet6") {
		t.Fatalf("eth0 has IPv6: %s", out)
	}
	r, err := runHelperCmd(inNS(os.Args[0]), helperReq{Op: "get", URL: "https://allowed.test/", CA: w.caFile})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 200 || !strings.HasPrefix(r.Body, "hello allowed.test") {
		t.Fatalf("HTTPS through the namespace: %+v", r)
	}
	// Root of a child user namespace: no CAP_NET_ADMIN over ours.
	for _, args := range [][]string{
		{"ip", "link", "set", "eth0", "down"},
		{"ip", "addr", "add", "10.9.9.9/32", "dev", "lo"},
		{"ip", "route", "add", "10.0.0.0/8", "via", "100.96.0.1"},
	} {
		cmd := inNS(append([]string{"unshare", "--user", "--map-root-user"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Operation not permitted") {
			t.Errorf("%v as root of a child user namespace: %v %s", args, err, out)
		}
	}
}
