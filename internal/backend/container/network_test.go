package container

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/netgw"
	"github.com/agentkernel/agentkernel/internal/netgw/dnstest"
	"github.com/agentkernel/agentkernel/internal/netgw/mitm"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// gatewaySpec gives s a gateway served in this process (as a supervisor
// would), allowing allowed.test, with a CA when withCA.
func gatewaySpec(t *testing.T, s *backend.Spec, withCA bool) *mitm.CA {
	t.Helper()
	up := dnstest.Start(t, map[string][]netip.Addr{
		"allowed.test": {netip.MustParseAddr("203.0.113.7")},
		"blocked.test": {netip.MustParseAddr("203.0.113.8")},
	})
	gw, err := netgw.New(netgw.Config{Sandbox: s.ID, Policy: policy.Policy{Allow: []string{"allowed.test"}},
		Upstreams: []netip.AddrPort{up.Addr}, MTU: 65000})
	if err != nil {
		t.Fatal(err)
	}
	var ns *os.File
	t.Cleanup(func() {
		gw.Close()
		if ns != nil {
			ns.Close()
		}
	})
	n := gw.Network()
	att := &backend.NetworkAttachment{
		Link: backend.Link{SandboxAddr: n.SandboxAddr, GatewayAddr: n.GatewayAddr, PrefixLen: n.PrefixLen, MTU: n.MTU},
		Netns: func(context.Context) (string, error) {
			f, fd, err := netgw.NewNetns("eth0", n)
			if err != nil {
				return "", err
			}
			ns = f
			if err := gw.AttachTap(fd); err != nil {
				return "", err
			}
			return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(f.Fd())), nil
		},
	}
	var ca *mitm.CA
	if withCA {
		if ca, err = mitm.NewCA("test sandbox"); err != nil {
			t.Fatal(err)
		}
		att.CACert = ca.CertPEM()
	}
	s.Security.Network = "gateway"
	s.Gateway = &backend.GatewaySpec{Attach: att}
	return ca
}

// TestGatewayNetwork: the sandbox sees lo and eth0 behind the gateway, its
// own /sys, the gateway as nameserver, and cannot reconfigure the
// namespace; the CA is trusted through the system bundle; Stop leaves no
// mount behind.
func TestGatewayNetwork(t *testing.T) {
	requireRunc(t)
	e := newEnv(t)
	s := e.spec(t)
	ca := gatewaySpec(t, s, true)
	inst := e.start(t, s)

	if got := sh(t, inst, "ls /sys/class/net | tr '\\n' ' '"); got != "eth0 lo" {
		t.Errorf("interfaces: %q", got)
	}
	if got := sh(t, inst, "ls -A /sys/firmware | wc -l"); got != "0" {
		t.Errorf("/sys/firmware is not masked: %s entries", got)
	}
	if got := sh(t, inst, "cat /sys/class/net/eth0/mtu"); got != "65000" {
		t.Errorf("eth0 mtu %q", got)
	}
	if got := sh(t, inst, "grep -v '^#' /etc/resolv.conf"); got != "nameserver 100.96.0.1" {
		t.Errorf("resolv.conf: %q", got)
	}
	if got := sh(t, inst, "getent hosts allowed.test"); !strings.HasPrefix(got, "203.0.113.7") {
		t.Errorf("allowed name: %q", got)
	}
	if r := run(t, inst, "getent", "hosts", "blocked.test"); r.Code == 0 {
		t.Errorf("blocked name resolved: %+v", r)
	}
	for _, cmd := range []string{
		"ip link set eth0 down", "ip addr add 10.9.9.9/32 dev lo", "ip route add 10.0.0.0/8 via 100.96.0.1",
		"echo 1 > /proc/sys/net/ipv4/ip_forward", "mount -t sysfs sysfs /mnt",
	} {
		if r := run(t, inst, "/bin/sh", "-c", cmd); r.Code == 0 {
			t.Errorf("%q succeeded in the sandbox", cmd)
		}
	}
	bundle := sh(t, inst, "cat /etc/ssl/certs/ca-certificates.crt")
	if !strings.HasSuffix(bundle+"\n", string(ca.CertPEM())) || strings.Count(bundle, "BEGIN CERTIFICATE") < 2 {
		t.Errorf("system bundle does not end with the sandbox's CA (%d certificates)", strings.Count(bundle, "BEGIN CERTIFICATE"))
	}
	if got := sh(t, inst, "cat "+backend.CACertFile); got+"\n" != string(ca.CertPEM()) {
		t.Errorf("%s: %q", backend.CACertFile, got)
	}
	if r := run(t, inst, "/bin/sh", "-c", "echo x > "+backend.CABundleFile); r.Code == 0 {
		t.Error("the CA bundle is writable")
	}
	l := e.b.layout(s)
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mps, err := mountsUnder(l.sysfs); err != nil || len(mps) > 0 {
		t.Errorf("sysfs left mounted: %v %v", mps, err)
	}
	if _, err := os.Stat(filepath.Join(l.sysfs)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sysfs dir left: %v", err)
	}
}

// TestGatewayNeedsAttachment: gateway mode without an attachment (the
// spec read back from disk, say) fails closed.
func TestGatewayNeedsAttachment(t *testing.T) {
	requireRunc(t)
	e := newEnv(t)
	s := e.spec(t)
	s.Security.Network = "gateway"
	s.Gateway = &backend.GatewaySpec{}
	if _, err := e.b.Start(context.Background(), s); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Start: %v", err)
	}
	e.assertClean(t, s)
}
