package netgw

import (
	"bufio"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/internal/netgw/mitm"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Config configures a Gateway. It is read by New and frozen after; only the
// policy changes later, through SetPolicy. Every zero value has the default
// documented on its field.
type Config struct {
	// Sandbox names the sandbox in audit events and logs.
	Sandbox string
	// SandboxAddr is the sandbox's address (default 100.96.0.2) and
	// GatewayAddr the gateway's (default 100.96.0.1), both in a
	// PrefixLen-bit subnet (default 30). They exist only inside the
	// sandbox's own namespace or VM and are never routed on the host.
	SandboxAddr netip.Addr
	GatewayAddr netip.Addr
	PrefixLen   int
	// MAC is the gateway's ethernet address; default 02:61:6b:00:00:01.
	MAC net.HardwareAddr
	// MTU of the link; default 1500. The sandbox's interface must use the
	// same.
	MTU uint32
	// Policy is the initial policy; the zero Policy allows nothing.
	Policy policy.Policy
	// Upstreams are the resolvers the gateway's DNS forwards allowed
	// queries to; nil means the nameservers of the host's
	// /etc/resolv.conf (port 53).
	Upstreams []netip.AddrPort
	// Forbidden are the ranges no flow and no DNS answer may reach,
	// whatever the policy; nil means DefaultForbidden(). Set it only in
	// tests, to let a loopback test server through.
	Forbidden []netip.Prefix
	// Secrets binds hosts to credentials the gateway adds to every HTTPS
	// request to them, terminating TLS with CA (see package mitm). A
	// bound host must also be allowed by the policy. Hosts without a
	// binding are never intercepted.
	Secrets []mitm.Binding
	// CA is the sandbox's interception CA; required when Secrets is set.
	// Its certificate belongs in the sandbox's trust store.
	CA *mitm.CA
	// UpstreamRoots verifies the servers of intercepted hosts; nil means
	// the host's roots. Tests set it.
	UpstreamRoots *x509.CertPool
	// Audit receives every event. It is called from many goroutines, must
	// be safe for concurrent use and must not block (write a line to a
	// buffered file, say). Nil discards events.
	Audit func(Event)
	// Observe, if set, also receives every event, before the denial rate
	// limit that guards Audit: it sees each denial, so counters it keeps
	// are exact. The same rules as for Audit apply (concurrent, no
	// blocking). It never receives "suppressed" events.
	Observe func(Event)
	// Trace, if set, is called when an allowed TCP flow is accepted, with
	// its connect event and the bytes already read from the sandbox (an
	// inspected HTTP request's head, a ClientHello, or nothing). It returns
	// the trace and span ids recorded on the flow's events and end, called
	// once with the flow's last event. It must not block.
	Trace func(ev Event, head []byte) (traceID, spanID string, end func(Event))
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger

	// MaxHandshakes bounds TCP handshakes in flight (SYNs over it are
	// dropped, the client retries); default 64.
	MaxHandshakes int
	// MaxFlows bounds the TCP and UDP flows proxied at once (further
	// flows are refused); default 1024.
	MaxFlows int
	// DialTimeout bounds dialling upstream; default 10s.
	DialTimeout time.Duration
	// SniffTimeout bounds waiting for a ClientHello or HTTP request head;
	// default 10s.
	SniffTimeout time.Duration
	// UDPIdle closes a UDP flow after this long without traffic; default
	// 60s.
	UDPIdle time.Duration
	// MinNameTTL is the shortest time a resolved name→address pair is
	// remembered for the egress check, whatever the DNS TTL (clients cache
	// answers longer than they should); default 10 minutes.
	MinNameTTL time.Duration
	// MaxNames bounds the remembered name→address pairs; default 16384.
	MaxNames int
	// DNSRate and DNSBurst bound DNS queries per second; default 100 and
	// 200.
	DNSRate  float64
	DNSBurst int
}

// Defaults of the Config fields.
var (
	DefaultSandboxAddr = netip.MustParseAddr("100.96.0.2")
	DefaultGatewayAddr = netip.MustParseAddr("100.96.0.1")
	DefaultMAC         = net.HardwareAddr{0x02, 0x61, 0x6b, 0x00, 0x00, 0x01}
)

// staticForbidden are the fixed ranges of DefaultForbidden.
var staticForbidden = []string{
	"0.0.0.0/8",          // "this" network
	"10.0.0.0/8",         // RFC 1918
	"100.64.0.0/10",      // CGNAT (also Alibaba's metadata 100.100.100.200)
	"127.0.0.0/8",        // loopback
	"169.254.0.0/16",     // link-local, 169.254.169.254 metadata (AWS, GCP, Azure, OCI), 169.254.170.2 (ECS)
	"172.16.0.0/12",      // RFC 1918
	"192.0.0.0/24",       // IETF protocol assignments (OCI's 192.0.0.192)
	"192.168.0.0/16",     // RFC 1918
	"198.18.0.0/15",      // benchmarking
	"168.63.129.16/32",   // Azure WireServer
	"224.0.0.0/4",        // multicast
	"240.0.0.0/4",        // reserved, broadcast
	"255.255.255.255/32", // broadcast (inside 240/4; listed for the reader)
}

// DefaultForbidden returns the default forbidden ranges: loopback, RFC 1918,
// link-local and cloud metadata addresses, CGNAT, multicast, reserved
// ranges, and every IPv4 address of the host's interfaces with its on-link
// subnet (the LAN).
func DefaultForbidden() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range staticForbidden {
		out = append(out, netip.MustParsePrefix(s))
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok || !ip.Unmap().Is4() {
			continue
		}
		ip = ip.Unmap()
		ones, _ := ipn.Mask.Size()
		out = append(out, netip.PrefixFrom(ip, 32))
		if ones >= 8 {
			out = append(out, netip.PrefixFrom(ip, ones).Masked())
		}
	}
	return out
}

// HostResolvers returns the nameservers of the host's /etc/resolv.conf, port
// 53, IPv4 only (the gateway dials them over IPv4 or IPv6 alike, but keeps
// to one family for predictability).
func HostResolvers() ([]netip.AddrPort, error) {
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("netgw: host resolvers: %w", err)
	}
	defer f.Close()
	return parseResolvConf(f)
}

func parseResolvConf(f *os.File) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		ip, err := netip.ParseAddr(fields[1])
		if err != nil || !ip.Unmap().Is4() {
			continue
		}
		out = append(out, netip.AddrPortFrom(ip.Unmap(), 53))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("netgw: reading resolv.conf: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("netgw: no IPv4 nameserver in /etc/resolv.conf: %w", errdefs.ErrFailedPrecondition)
	}
	return out, nil
}

// withDefaults validates c and fills in its defaults.
func (c Config) withDefaults() (Config, error) {
	if !c.SandboxAddr.IsValid() {
		c.SandboxAddr = DefaultSandboxAddr
	}
	if !c.GatewayAddr.IsValid() {
		c.GatewayAddr = DefaultGatewayAddr
	}
	if c.PrefixLen == 0 {
		c.PrefixLen = 30
	}
	if !c.SandboxAddr.Is4() || !c.GatewayAddr.Is4() || c.SandboxAddr == c.GatewayAddr ||
		c.PrefixLen < 8 || c.PrefixLen > 30 {
		return c, fmt.Errorf("netgw: sandbox %s and gateway %s must be distinct IPv4 addresses in a /8 to /30: %w",
			c.SandboxAddr, c.GatewayAddr, errdefs.ErrInvalidArgument)
	}
	if p := netip.PrefixFrom(c.GatewayAddr, c.PrefixLen).Masked(); !p.Contains(c.SandboxAddr) {
		return c, fmt.Errorf("netgw: sandbox %s is not in the gateway's subnet %s: %w", c.SandboxAddr, p, errdefs.ErrInvalidArgument)
	}
	if c.MAC == nil {
		c.MAC = DefaultMAC
	}
	if len(c.MAC) != 6 {
		return c, fmt.Errorf("netgw: MAC %s is not an ethernet address: %w", c.MAC, errdefs.ErrInvalidArgument)
	}
	if c.MTU == 0 {
		c.MTU = 1500
	}
	if c.MTU < 576 || c.MTU > 65000 {
		return c, fmt.Errorf("netgw: MTU %d out of range: %w", c.MTU, errdefs.ErrInvalidArgument)
	}
	if c.Upstreams == nil {
		up, err := HostResolvers()
		if err != nil {
			return c, err
		}
		c.Upstreams = up
	}
	if c.Forbidden == nil {
		c.Forbidden = DefaultForbidden()
	}
	if len(c.Secrets) > 0 && c.CA == nil {
		return c, fmt.Errorf("netgw: secrets need an interception CA: %w", errdefs.ErrInvalidArgument)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxHandshakes, 64)
	def(&c.MaxFlows, 1024)
	def(&c.MaxNames, 16384)
	defDur(&c.DialTimeout, 10*time.Second)
	defDur(&c.SniffTimeout, 10*time.Second)
	defDur(&c.UDPIdle, 60*time.Second)
	defDur(&c.MinNameTTL, 10*time.Minute)
	if c.DNSRate <= 0 {
		c.DNSRate, c.DNSBurst = 100, 200
	}
	def(&c.DNSBurst, 1)
	return c, nil
}
