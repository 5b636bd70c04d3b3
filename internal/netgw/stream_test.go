package netgw

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/agentkernel/agentkernel/internal/netgw/dnstest"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// guest is a second netstack playing a microVM: its NIC speaks the
// length-prefixed stream framing of QEMU's -netdev stream, as QEMU would.
type guest struct {
	s *stack.Stack
}

// newGuest returns a guest whose stream end is returned as a net.Conn to
// hand to AttachStream.
func newGuest(t *testing.T) (*guest, net.Conn) {
	t.Helper()
	// vm <-> gateway: a stream socketpair, as QEMU's Unix socket.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	gwEnd := fileConn(t, sp[0])
	vmEnd := fileConn(t, sp[1])
	// The guest NIC reads packets from a seqpacket pair pumped to vmEnd.
	pp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	pump := fileConn(t, pp[1])
	go func() { // stream -> guest NIC
		buf, l := make([]byte, 1518), make([]byte, 4)
		for {
			n, err := readStreamFrame(vmEnd, buf, l, len(buf))
			if err != nil {
				pump.Close()
				return
			}
			pump.Write(buf[:n])
		}
	}()
	go func() { // guest NIC -> stream
		buf := make([]byte, 4+1518)
		for {
			n, err := pump.Read(buf[4:])
			if err != nil {
				vmEnd.Close()
				return
			}
			binary.BigEndian.PutUint32(buf, uint32(n))
			vmEnd.Write(buf[:4+n])
		}
	}()
	ep, err := fdbased.New(&fdbased.Options{FDs: []int{pp[0]}, MTU: 1500, EthernetHeader: true,
		Address: tcpip.LinkAddress([]byte{0x02, 0, 0, 0, 0, 0x02})})
	if err != nil {
		t.Fatal(err)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	if err := s.CreateNIC(1, ep); err != nil {
		t.Fatal(err)
	}
	if err := s.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(DefaultSandboxAddr.As4()), PrefixLen: 30}}, stack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(DefaultGatewayAddr.As4()), NIC: 1}})
	t.Cleanup(func() {
		s.Close()
		vmEnd.Close()
		pump.Close()
		s.Wait()
		unix.Close(pp[0])
	})
	return &guest{s: s}, gwEnd
}

func fileConn(t *testing.T, fd int) net.Conn {
	f := os.NewFile(uintptr(fd), "sock")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (g *guest) resolve(t *testing.T, name string) (netip.Addr, dnsmessage.RCode) {
	t.Helper()
	c, err := gonet.DialUDP(g.s, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(DefaultGatewayAddr.As4()), Port: 53}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: 7, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	b, _ := q.Pack()
	buf := make([]byte, 1500)
	for range 5 { // the first query may be lost while ARP resolves
		c.Write(b)
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			continue
		}
		var m dnsmessage.Message
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		for _, a := range m.Answers {
			if r, ok := a.Body.(*dnsmessage.AResource); ok {
				return netip.AddrFrom4(r.A), m.Header.RCode
			}
		}
		return netip.Addr{}, m.Header.RCode
	}
	t.Fatalf("no DNS answer for %s", name)
	return netip.Addr{}, 0
}

func (g *guest) dial(ctx context.Context, ap netip.AddrPort) (net.Conn, error) {
	return gonet.DialContextTCP(ctx, g.s, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(ap.Addr().As4()), Port: ap.Port()}, ipv4.ProtocolNumber)
}

// TestStreamAttachment drives the gateway through AttachStream from a guest
// netstack, as a microVM would. DNS and refusals need no root; the HTTPS
// flow needs the test world (a server on a public-looking address: both
// the guest's and the gateway's stacks drop packets to loopback, as
// kernels do).
func TestStreamAttachment(t *testing.T) {
	ca, caKey := newCA(t)
	leaf := newLeaf(t, ca, caKey, "allowed.test")
	srvAddr := netip.MustParseAddrPort("203.0.113.250:443")
	if inWorld() {
		ln, err := tls.Listen("tcp4", srvAddr.String(), &tls.Config{Certificates: []tls.Certificate{leaf}})
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello vm") })}
		go srv.Serve(ln)
		defer srv.Close()
	}
	up := dnstest.Start(t, map[string][]netip.Addr{"allowed.test": {srvAddr.Addr()}, "blocked.test": {srvAddr.Addr()}})

	gw, err := New(Config{Sandbox: "vm", Policy: policy.Policy{Allow: []string{"allowed.test"}}, Upstreams: []netip.AddrPort{up.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	g, conn := newGuest(t)
	if err := gw.AttachStream(conn); err != nil {
		t.Fatal(err)
	}
	other, _ := net.Pipe()
	if err := gw.AttachStream(other); err == nil {
		t.Fatal("second attachment accepted")
	}

	if ip, rc := g.resolve(t, "blocked.test"); rc != dnsmessage.RCodeNameError || ip.IsValid() {
		t.Fatalf("blocked.test: %v %v", ip, rc)
	}
	ip, rc := g.resolve(t, "allowed.test")
	if rc != dnsmessage.RCodeSuccess || ip != srvAddr.Addr() {
		t.Fatalf("allowed.test: %v %v", ip, rc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// An address never resolved is reset at once.
	start := time.Now()
	if _, err := g.dial(ctx, netip.MustParseAddrPort("203.0.113.251:443")); err == nil || time.Since(start) > time.Second {
		t.Fatalf("unresolved address through the stream: %v after %v", err, time.Since(start))
	}
	testPublish(t, gw, g)
	if !inWorld() {
		t.Log("HTTPS through the stream not tested: needs root (the test world)")
		return
	}
	c, err := g.dial(ctx, srvAddr)
	if err != nil {
		t.Fatalf("dial through the stream: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	tc := tls.Client(c, &tls.Config{ServerName: "allowed.test", RootCAs: pool})
	defer tc.Close()
	fmt.Fprintf(tc, "GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatalf("HTTPS through the stream: %v", err)
	}
	body := make([]byte, 64)
	n, _ := resp.Body.Read(body)
	if !strings.Contains(string(body[:n]), "hello vm") {
		t.Fatalf("body %q", body[:n])
	}
}

func TestStreamFraming(t *testing.T) {
	buf, l := make([]byte, 1518), make([]byte, 4)
	for _, in := range []string{"\xff\xff\xff\xff", "\x00\x00\x00\x02ab", "\x00\x00\x05\xef"} {
		if _, err := readStreamFrame(strings.NewReader(in), buf, l, 1518); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("length %x: err = %v, want invalid argument", in[:4], err)
		}
	}
	frame := "\x00\x00\x00\x0e" + strings.Repeat("x", 14)
	if n, err := readStreamFrame(strings.NewReader(frame), buf, l, 1518); err != nil || n != 14 {
		t.Fatalf("14-byte frame: %d, %v", n, err)
	}
	mac := []byte(DefaultMAC)
	ipv4 := append(append(append([]byte{}, mac...), 2, 0, 0, 0, 0, 2), 0x08, 0x00)
	for name, tc := range map[string]struct {
		f  []byte
		ok bool
	}{
		"ipv4 to us":     {append(ipv4, 0x45), true},
		"arp broadcast":  {append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x06}, 0), true},
		"foreign mac":    {append([]byte{0x02, 9, 9, 9, 9, 9, 2, 0, 0, 0, 0, 2, 0x08, 0x00}, 0x45), false},
		"ipv6 multicast": {[]byte{0x33, 0x33, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd}, false},
		"runt":           {ipv4[:13], false},
		"oversize":       {append(ipv4, make([]byte, 1600)...), false},
	} {
		if got := frameOK(tc.f, mac, 1518); got != tc.ok {
			t.Errorf("%s: frameOK = %v", name, got)
		}
	}
}

// testPublish publishes a port of the guest on the host's loopback and
// talks to it.
func testPublish(t *testing.T, gw *Gateway, g *guest) {
	t.Helper()
	ln, err := gonet.ListenTCP(g.s, tcpip.FullAddress{NIC: 1, Port: 8080}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "from %s: ", c.RemoteAddr())
				io.Copy(c, c)
			}()
		}
	}()
	if _, _, err := gw.Publish(netip.MustParseAddrPort("0.0.0.0:0"), 8080); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("publish on a public address: %v", err)
	}
	addr, stop, err := gw.Publish(netip.MustParseAddrPort("127.0.0.1:0"), 8080)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("ping"))
	c.(*net.TCPConn).CloseWrite()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	c.Close()
	if want := "from " + DefaultGatewayAddr.String(); !strings.HasPrefix(string(b), want) || !strings.HasSuffix(string(b), ": ping") {
		t.Fatalf("published port answered %q, %v", b, err)
	}
	stop()
	stop()
	if c, err := net.Dial("tcp", addr.String()); err == nil {
		c.Close()
		t.Fatal("published port still listening after stop")
	}
}
