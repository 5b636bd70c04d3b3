package netgw

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
)

// maxDatagram bounds one UDP payload relayed.
const maxDatagram = 65535

// decideUDP decides a UDP flow to dst:port. Names cannot be checked on UDP
// (QUIC hides them), so only CIDR rules and the permissive profile open it.
func (g *Gateway) decideUDP(dst netip.Addr, port uint16) verdict {
	if p, bad := g.isForbidden(dst); bad {
		return verdict{rule: "forbidden:" + p.String()}
	}
	if d := g.policy.Load().AllowAddr(dst, port, policy.UDP); d.Allowed {
		return verdict{allowed: true, rule: d.Rule}
	}
	return verdict{rule: "udp-not-allowed"}
}

// handleUDP is the UDP forwarder's handler, called on the stack's goroutine
// for each datagram that matches no endpoint (the first of a flow). It must
// not block: the relay runs in a goroutine of its own. Returning false
// makes the stack answer with ICMP port unreachable, so a denied client
// fails at once.
func (g *Gateway) handleUDP(r *udp.ForwarderRequest) bool {
	id := r.ID()
	src := netip.AddrFrom4(id.RemoteAddress.As4())
	dst := netip.AddrFrom4(id.LocalAddress.As4())
	ev := Event{Kind: "connect", Proto: "udp", IP: dst, Port: id.LocalPort}
	var v verdict
	if src != g.cfg.SandboxAddr {
		v = verdict{rule: "spoofed-source:" + src.String()}
	} else {
		v = g.decideUDP(dst, id.LocalPort)
	}
	if !v.allowed {
		g.stats.udpDenied.Add(1)
		ev.Rule = v.rule
		g.emitDenial(ev)
		return false
	}
	select {
	case g.flows <- struct{}{}:
	default:
		g.stats.udpDenied.Add(1)
		ev.Rule = "limit:flows"
		g.emitDenial(ev)
		return true // dropped
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		<-g.flows
		g.log.Debug("netgw: udp endpoint", "dst", dst, "err", terr)
		return true
	}
	conn := gonet.NewUDPConn(&wq, ep)
	ev.Allowed, ev.Rule = true, v.rule
	g.stats.udpAllowed.Add(1)
	ok := g.goTracked(func() {
		defer func() { <-g.flows }()
		defer conn.Close()
		g.relayUDP(conn, ev)
	})
	if !ok {
		<-g.flows
		conn.Close()
	}
	return true
}

// relayUDP dials dst from the host and relays datagrams both ways until the
// flow is idle for UDPIdle or the gateway closes.
func (g *Gateway) relayUDP(conn *gonet.UDPConn, ev Event) {
	start := time.Now()
	up, err := g.dial(g.ctx, "udp4", ev.IP, ev.Port)
	if err != nil {
		ev.Error = err.Error()
		g.emit(ev)
		return
	}
	defer up.Close()
	g.emit(ev)
	var last atomic.Int64 // unix nanos of the last datagram either way
	last.Store(time.Now().UnixNano())
	var upBytes, downBytes atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(done); conn.Close(); up.Close() }) }
	var wg sync.WaitGroup
	relay := func(dst, src net.Conn, n *atomic.Int64) {
		defer stop()
		buf := make([]byte, maxDatagram)
		for {
			k, err := src.Read(buf)
			if err != nil {
				return
			}
			last.Store(time.Now().UnixNano())
			n.Add(int64(k))
			// A datagram that cannot be sent is lost, as UDP allows;
			// only a closed conn ends the relay.
			if _, err := dst.Write(buf[:k]); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}
	wg.Go(func() { relay(up, conn, &upBytes) })
	wg.Go(func() { relay(conn, up, &downBytes) })
	tick := time.NewTicker(min(g.cfg.UDPIdle/4, 5*time.Second))
	defer tick.Stop()
loop:
	for {
		select {
		case <-g.ctx.Done():
			break loop
		case <-done:
			break loop
		case <-tick.C:
			if time.Since(time.Unix(0, last.Load())) > g.cfg.UDPIdle {
				break loop
			}
		}
	}
	stop()
	wg.Wait()
	ev.Kind = "close"
	ev.BytesUp, ev.BytesDown = upBytes.Load(), downBytes.Load()
	ev.Duration = time.Since(start)
	g.emit(ev)
}
