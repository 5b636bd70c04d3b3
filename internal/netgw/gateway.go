package netgw

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/agentkernel/agentkernel/internal/netgw/dns"
	"github.com/agentkernel/agentkernel/internal/netgw/mitm"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// nicID is the one NIC of a gateway's stack.
const nicID tcpip.NICID = 1

// Gateway is one sandbox's network gateway. New creates it; one Attach call
// connects it to the sandbox; Close stops it. SetPolicy, Policy and Stats may
// be called from any goroutine at any time.
//
// A Gateway owns its netstack, the goroutines that serve DNS and proxy
// flows, the host connections those flows dial, and the attachment it was
// given (the tap fd or the stream conn), which Close closes. Close waits for
// every goroutine the Gateway started, except that a TCP handler the
// netstack spawned for a SYN in the instant Close began may still run
// briefly and reset its flow.
type Gateway struct {
	cfg       Config // frozen by New
	log       *slog.Logger
	forbidden []netip.Prefix
	stack     *stack.Stack
	dns       *dns.Server
	names     *nameTable
	denials   denyLimiter
	flows     chan struct{} // one token per proxied flow
	ctx       context.Context
	cancel    context.CancelFunc

	// secrets are the bindings by host; SetSecrets replaces them.
	secrets atomic.Pointer[map[string]mitm.Binding]
	proxy   *mitm.Proxy // nil without an interception CA

	policy atomic.Pointer[policy.Compiled]
	stats  counters

	// mu guards the fields below. It is never held while calling into the
	// stack, which calls back into the gateway from its own goroutines.
	mu       sync.Mutex
	closed   bool
	attached bool
	wg       sync.WaitGroup // gateway goroutines; Add only under mu while !closed
	stoppers []func()       // run by Close before waiting: close listeners and attachments
}

// counters are the gateway's statistics.
type counters struct {
	tcpAllowed, tcpDenied, udpAllowed, udpDenied atomic.Int64
}

// Stats is a snapshot of a gateway's counters.
type Stats struct {
	TCPAllowed, TCPDenied, UDPAllowed, UDPDenied int64
	// DNSDropped counts queries dropped by the DNS rate limit.
	DNSDropped uint64
}

// New validates cfg, compiles its policy and builds the gateway's stack. The
// gateway passes no traffic until AttachTap or AttachStream.
func New(cfg Config) (*Gateway, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	pol, err := policy.Compile(cfg.Policy)
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		cfg:       cfg,
		log:       cfg.Logger.With("sandbox", cfg.Sandbox),
		forbidden: slices.Clone(cfg.Forbidden),
		names:     newNameTable(cfg.MaxNames),
		denials:   denyLimiter{rate: 50, burst: 500},
		flows:     make(chan struct{}, cfg.MaxFlows),
	}
	g.policy.Store(pol)
	bindings, err := mitm.Bindings(cfg.Secrets)
	if err != nil {
		return nil, err
	}
	g.secrets.Store(&bindings)
	if cfg.CA != nil {
		g.proxy = &mitm.Proxy{
			CA:      cfg.CA,
			RootCAs: cfg.UpstreamRoots,
			Logger:  g.log,
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				ap, err := netip.ParseAddrPort(addr)
				if err != nil {
					return nil, err
				}
				return g.dial(ctx, "tcp4", ap.Addr(), ap.Port())
			},
		}
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.dns, err = dns.New(dns.Config{
		Upstreams: cfg.Upstreams,
		Allow:     func(name string) policy.Decision { return g.policy.Load().AllowName(name) },
		Forbidden: g.isForbidden,
		Record:    g.record,
		Audit:     g.auditDNS,
		Logger:    g.log,
		Rate:      cfg.DNSRate,
		Burst:     cfg.DNSBurst,
	})
	if err != nil {
		return nil, err
	}
	g.stack = stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	sack := tcpip.TCPSACKEnabled(true)
	g.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	// The gateway often closes first (the upstream server did), so its
	// endpoint sits in TIME_WAIT while the sandbox's kernel, the passive
	// closer, frees the port at once and may pick it again for a new
	// connection. A SYN for a 4-tuple in TIME_WAIT goes unanswered until
	// TIME_WAIT ends, so with netstack's default of 60 s a reused port
	// hung the connection for the client's whole SYN retry budget (about
	// 31 s; found by test/soak, 1 GET in about 600). The link is a
	// point-to-point tap with no delayed duplicates to guard against, so
	// one second is enough: a reused port then costs at most one SYN retry.
	tw := tcpip.TCPTimeWaitTimeoutOption(gatewayTimeWait)
	if terr := g.stack.SetTransportProtocolOption(tcp.ProtocolNumber, &tw); terr != nil {
		return nil, fmt.Errorf("netgw: setting the TIME_WAIT timeout: %s", terr)
	}
	tcpFwd := tcp.NewForwarder(g.stack, 0, cfg.MaxHandshakes, g.handleTCP)
	g.stack.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	udpFwd := udp.NewForwarder(g.stack, g.handleUDP)
	g.stack.SetTransportProtocolHandler(udp.ProtocolNumber, udpFwd.HandlePacket)
	return g, nil
}

// gatewayTimeWait is how long the gateway's side of a closed TCP flow stays
// in TIME_WAIT.
const gatewayTimeWait = time.Second

// SetPolicy replaces the policy of the running gateway. New flows and DNS
// queries see it at once; flows already proxied are not cut. An invalid
// policy is an error wrapping errdefs.ErrInvalidArgument and leaves the old
// one in force.
func (g *Gateway) SetPolicy(p policy.Policy) error {
	c, err := policy.Compile(p)
	if err != nil {
		return err
	}
	g.policy.Store(c)
	g.log.Info("netgw: policy changed", "profile", p.Profile, "allow", len(p.Allow), "rules", len(p.Rules))
	return nil
}

// SetSecrets replaces the gateway's secret bindings: new flows to a bound
// host are intercepted and get the credential; flows already proxied keep
// what they had. Bindings need the interception CA given to New; without
// one, or with a malformed binding, the old bindings stay in force.
func (g *Gateway) SetSecrets(bs []mitm.Binding) error {
	if len(bs) > 0 && g.proxy == nil {
		return fmt.Errorf("netgw: secrets need an interception CA, and this gateway was started without one: %w", errdefs.ErrFailedPrecondition)
	}
	m, err := mitm.Bindings(bs)
	if err != nil {
		return err
	}
	g.secrets.Store(&m)
	g.log.Info("netgw: secret bindings changed", "hosts", len(m))
	return nil
}

// Policy returns the policy in force.
func (g *Gateway) Policy() policy.Policy { return g.policy.Load().Policy() }

// Stats returns the gateway's counters.
func (g *Gateway) Stats() Stats {
	return Stats{
		TCPAllowed: g.stats.tcpAllowed.Load(), TCPDenied: g.stats.tcpDenied.Load(),
		UDPAllowed: g.stats.udpAllowed.Load(), UDPDenied: g.stats.udpDenied.Load(),
		DNSDropped: g.dns.Dropped(),
	}
}

// Close stops the gateway: it cancels every flow, stops the stack and the
// attachment, and waits for the gateway's goroutines. It is idempotent; later
// calls return nil at once.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	stoppers := g.stoppers
	g.mu.Unlock()

	g.cancel()      // proxies close their host conns, DNS and pump loops return
	g.stack.Close() // aborts every endpoint: gonet conns fail
	for _, f := range stoppers {
		f() // DNS listeners, the attachment: their goroutines return
	}
	g.wg.Wait()
	g.stack.Wait() // removes the NIC and closes the link endpoint
	return nil
}

// enter registers a goroutine about to start; it returns false once the
// gateway is closing. Each true must be paired with g.wg.Done.
func (g *Gateway) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// addStopper registers stop, run by Close before it waits for goroutines.
// It returns false, registering nothing, once the gateway is closing.
func (g *Gateway) addStopper(stop func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.stoppers = append(g.stoppers, stop)
	return true
}

// goTracked runs f in a goroutine that Close waits for; it reports false
// (and does not run f) once the gateway is closing.
func (g *Gateway) goTracked(f func()) bool {
	if !g.enter() {
		return false
	}
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}

// isForbidden reports whether ip lies in a forbidden range, and which.
// Anything that is not IPv4 is forbidden.
func (g *Gateway) isForbidden(ip netip.Addr) (netip.Prefix, bool) {
	ip = ip.Unmap()
	if !ip.Is4() {
		return netip.Prefix{}, true
	}
	for _, p := range g.forbidden {
		if p.Contains(ip) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// record is the DNS server's Record hook.
func (g *Gateway) record(name string, ips []netip.Addr, ttl time.Duration) {
	now := time.Now()
	g.names.add(name, ips, now.Add(max(ttl, g.cfg.MinNameTTL)), now)
}

// allowedNames returns the names ip was resolved for that the current policy
// still allows.
func (g *Gateway) allowedNames(ip netip.Addr) []string {
	pol := g.policy.Load()
	var out []string
	for _, n := range g.names.names(ip, time.Now()) {
		if pol.AllowName(n).Allowed {
			out = append(out, n)
		}
	}
	return out
}

func (g *Gateway) emit(e Event) {
	g.observe(&e)
	g.audit(e)
}

// observe stamps e and hands it to Config.Observe.
func (g *Gateway) observe(e *Event) {
	e.Time = time.Now()
	e.Sandbox = g.cfg.Sandbox
	if g.cfg.Observe != nil {
		g.cfg.Observe(*e)
	}
}

// audit hands a stamped e to Config.Audit.
func (g *Gateway) audit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
		e.Sandbox = g.cfg.Sandbox
	}
	if g.cfg.Audit != nil {
		g.cfg.Audit(e)
	}
}

// emitDenial observes a denial, and emits it to the audit log unless the
// denial rate limit is exhausted.
func (g *Gateway) emitDenial(e Event) {
	g.observe(&e)
	ok, suppressed := g.denials.take(e.Time)
	if !ok {
		return
	}
	if suppressed > 0 {
		g.audit(Event{Kind: "suppressed", Rule: "audit-rate-limit", Count: suppressed})
	}
	g.audit(e)
}

func (g *Gateway) auditDNS(a dns.Answer) {
	g.emit(Event{Kind: "dns", Name: a.Name, IPs: a.IPs, QType: a.Type, RCode: a.RCode, Allowed: a.Allowed, Rule: a.Rule})
}

func errNotAttachable(what string) error {
	return fmt.Errorf("netgw: %s: %w", what, errdefs.ErrFailedPrecondition)
}
