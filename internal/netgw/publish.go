package netgw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Publish listens on hostAddr, which must be a loopback address (port 0
// picks a free port), and forwards every connection accepted there to
// sandboxPort on the sandbox's address, through the gateway's stack: the
// sandbox sees it come from the gateway address. It returns the address
// listened on and a function that stops this publication (idempotent);
// Close stops them all. Connections count against Config.MaxFlows and each
// is audited (Kind "inbound", then "close").
func (g *Gateway) Publish(hostAddr netip.AddrPort, sandboxPort uint16) (netip.AddrPort, func(), error) {
	if !hostAddr.Addr().IsLoopback() || sandboxPort == 0 {
		return netip.AddrPort{}, nil, fmt.Errorf("netgw: publish %s -> %d: the host side must be a loopback address and the sandbox port non-zero: %w",
			hostAddr, sandboxPort, errdefs.ErrInvalidArgument)
	}
	ln, err := net.Listen("tcp", hostAddr.String())
	if err != nil {
		return netip.AddrPort{}, nil, fmt.Errorf("netgw: publish on %s: %w", hostAddr, err)
	}
	addr := netip.MustParseAddrPort(ln.Addr().String())
	var once sync.Once
	stop := func() { once.Do(func() { ln.Close() }) }
	if !g.addStopper(stop) {
		stop()
		return netip.AddrPort{}, nil, errNotAttachable("gateway closed")
	}
	rule := fmt.Sprintf("publish:%s", addr)
	ok := g.goTracked(func() {
		defer stop()
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					g.log.Warn("netgw: publish accept failed", "addr", addr, "err", err)
				}
				return
			}
			if !g.goTracked(func() { g.forwardInbound(c.(*net.TCPConn), sandboxPort, rule) }) {
				c.Close()
				return
			}
		}
	})
	if !ok {
		stop()
		return netip.AddrPort{}, nil, errNotAttachable("gateway closed")
	}
	g.log.Info("netgw: publishing", "host", addr, "sandbox_port", sandboxPort)
	return addr, stop, nil
}

// forwardInbound connects c to the sandbox's port and splices.
func (g *Gateway) forwardInbound(c *net.TCPConn, port uint16, rule string) {
	defer c.Close()
	ev := Event{Kind: "inbound", Proto: "tcp", IP: g.cfg.SandboxAddr, Port: port, Rule: rule}
	select {
	case g.flows <- struct{}{}:
	default:
		ev.Rule = "limit:flows"
		g.emitDenial(ev)
		return
	}
	defer func() { <-g.flows }()
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.DialTimeout)
	defer cancel()
	in, err := gonet.DialContextTCP(ctx, g.stack, tcpip.FullAddress{
		NIC: nicID, Addr: tcpip.AddrFrom4(g.cfg.SandboxAddr.As4()), Port: port,
	}, ipv4.ProtocolNumber)
	ev.Allowed = true
	if err != nil {
		ev.Error = err.Error()
		g.emit(ev)
		return
	}
	defer in.Close()
	g.emit(ev)
	start := time.Now()
	// Up is towards the sandbox here: the host is the client.
	ev.BytesDown, ev.BytesUp = splice(g.ctx, c, in)
	ev.Kind, ev.Duration = "close", time.Since(start)
	g.emit(ev)
}
