package netgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/agentkernel/agentkernel/internal/netgw/mitm"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/internal/netgw/sniff"
)

// inspect says what a flow must show before it is dialled.
type inspect int

const (
	inspectNone inspect = iota // allowed as is
	inspectTLS                 // ClientHello SNI must be one of names
	inspectHTTP                // HTTP Host must be one of names
)

// verdict is the decision taken at SYN time.
type verdict struct {
	allowed bool
	rule    string
	inspect inspect
	names   []string // names the destination was resolved for, still allowed
}

// decideTCP decides a TCP flow to dst:port from its SYN alone.
func (g *Gateway) decideTCP(dst netip.Addr, port uint16) verdict {
	if p, bad := g.isForbidden(dst); bad {
		return verdict{rule: "forbidden:" + p.String()}
	}
	pol := g.policy.Load()
	if d := pol.AllowAddr(dst, port, policy.TCP); d.Allowed {
		return verdict{allowed: true, rule: d.Rule}
	}
	names := g.allowedNames(dst)
	if len(names) == 0 {
		return verdict{rule: "unresolved"}
	}
	slices.Sort(names)
	if !pol.DomainPort(port) {
		return verdict{rule: "port-not-allowed", names: names}
	}
	v := verdict{allowed: true, rule: "name:" + names[0], names: names}
	switch port {
	case 443:
		v.inspect = inspectTLS
	case 80:
		v.inspect = inspectHTTP
	}
	return v
}

// handleTCP is the TCP forwarder's handler, run in its own goroutine for
// each SYN that matches no endpoint. It decides before creating an endpoint;
// a denied flow gets a RST at once.
func (g *Gateway) handleTCP(r *tcp.ForwarderRequest) {
	if !g.enter() {
		r.Complete(true)
		return
	}
	defer g.wg.Done()
	id := r.ID()
	src := netip.AddrFrom4(id.RemoteAddress.As4())
	dst := netip.AddrFrom4(id.LocalAddress.As4())
	ev := Event{Kind: "connect", Proto: "tcp", IP: dst, Port: id.LocalPort}
	var v verdict
	if src != g.cfg.SandboxAddr {
		v = verdict{rule: "spoofed-source:" + src.String()}
	} else {
		v = g.decideTCP(dst, id.LocalPort)
	}
	if len(v.names) > 0 {
		ev.Name = v.names[0]
	}
	if !v.allowed {
		g.stats.tcpDenied.Add(1)
		r.Complete(true)
		ev.Rule = v.rule
		g.emitDenial(ev)
		return
	}
	select {
	case g.flows <- struct{}{}:
	default:
		g.stats.tcpDenied.Add(1)
		r.Complete(true)
		ev.Rule = "limit:flows"
		g.emitDenial(ev)
		return
	}
	defer func() { <-g.flows }()
	// A flow that needs no inspection is dialled before the handshake
	// completes, so that an upstream refusal reaches the sandbox as a RST
	// rather than as an accepted connection that then drops.
	var up net.Conn
	if v.inspect == inspectNone {
		var err error
		if up, err = g.dial(g.ctx, "tcp4", dst, id.LocalPort); err != nil {
			r.Complete(true)
			ev.Allowed, ev.Rule, ev.Error = true, v.rule, err.Error()
			g.stats.tcpAllowed.Add(1)
			g.emit(ev)
			return
		}
		defer up.Close()
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		r.Complete(true)
		g.log.Debug("netgw: tcp handshake failed", "dst", dst, "port", id.LocalPort, "err", terr)
		return
	}
	r.Complete(false)
	conn := gonet.NewTCPConn(&wq, ep)
	defer conn.Close()
	g.proxyTCP(conn, ep, up, v, ev)
}

// proxyTCP inspects the flow if needed, dials upstream unless up is already
// connected, and splices. The caller closes conn and up.
func (g *Gateway) proxyTCP(conn *gonet.TCPConn, ep tcpip.Endpoint, up net.Conn, v verdict, ev Event) {
	var head []byte
	if v.inspect != inspectNone {
		parse, limit, what := sniff.ClientHelloSNI, sniff.MaxHello, "clienthello"
		if v.inspect == inspectHTTP {
			parse, limit, what = sniff.HTTPHost, sniff.MaxHTTPHeader, "http"
		}
		var name string
		var err error
		head, name, err = sniff.Read(conn, parse, limit, time.Now().Add(g.cfg.SniffTimeout))
		switch {
		case errors.Is(err, sniff.ErrMalformed):
			ev.Rule = "malformed-" + what
		case err != nil:
			ev.Rule = "no-" + what
			ev.Error = err.Error()
		case !slices.Contains(v.names, name):
			ev.Rule = map[inspect]string{inspectTLS: "sni-mismatch", inspectHTTP: "host-mismatch"}[v.inspect]
			ev.Name = name
		default:
			ev.Name = name
			v.rule = "name:" + name
		}
		if ev.Rule != "" {
			g.stats.tcpDenied.Add(1)
			ep.Abort() // RST: the client sees a reset, not a clean close
			g.emitDenial(ev)
			return
		}
	}
	ev.Allowed, ev.Rule = true, v.rule
	g.stats.tcpAllowed.Add(1)
	start := time.Now()
	if g.cfg.Trace != nil {
		var end func(Event)
		ev.TraceID, ev.SpanID, end = g.cfg.Trace(ev, head)
		defer func() { end(ev) }()
	}
	if b, ok := (*g.secrets.Load())[ev.Name]; ok && v.inspect == inspectTLS {
		ev = g.intercept(conn, head, b, ev)
		return
	}
	if up == nil {
		var err error
		if up, err = g.dial(g.ctx, "tcp4", ev.IP, ev.Port); err != nil {
			ep.Abort()
			ev.Error = err.Error()
			g.emit(ev)
			return
		}
		defer up.Close()
	}
	g.emit(ev)
	if len(head) > 0 {
		if _, err := up.Write(head); err != nil {
			ep.Abort()
			return
		}
	}
	upBytes, downBytes := splice(g.ctx, conn, up.(*net.TCPConn))
	ev.Kind = "close"
	ev.BytesUp, ev.BytesDown = upBytes+int64(len(head)), downBytes
	ev.Duration = time.Since(start)
	ev.Error = ""
	g.emit(ev)
}

// dial connects from the host to ip:port. The destination is checked
// against the forbidden ranges once more, in the dialer's Control hook, so
// that no code path can dial one.
func (g *Gateway) dial(ctx context.Context, network string, ip netip.Addr, port uint16) (net.Conn, error) {
	d := net.Dialer{
		Timeout: g.cfg.DialTimeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			if p, bad := g.isForbidden(ap.Addr()); bad {
				return fmt.Errorf("netgw: refusing to dial %s in forbidden range %s", ap, p)
			}
			return nil
		},
	}
	return d.DialContext(ctx, network, netip.AddrPortFrom(ip, port).String())
}

// halfCloser is a stream conn whose write side can be shut alone.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// splice copies both ways until both directions end or ctx is done. When
// one direction reaches EOF, the other side's write half is shut, so
// half-closed protocols work. It returns the bytes copied from a to b (up)
// and from b to a (down).
func splice(ctx context.Context, a, b halfCloser) (up, down int64) {
	stop := context.AfterFunc(ctx, func() { a.Close(); b.Close() })
	defer stop()
	var wg sync.WaitGroup
	cp := func(dst, src halfCloser, n *int64) {
		*n, _ = io.Copy(dst, src)
		dst.CloseWrite()
	}
	wg.Go(func() { cp(b, a, &up) })
	cp(a, b, &down)
	wg.Wait()
	return up, down
}

// intercept hands a TLS flow to a host with a secret binding to the
// interception proxy. head is the ClientHello already read from conn. It
// returns the flow's closing event.
func (g *Gateway) intercept(conn net.Conn, head []byte, b mitm.Binding, ev Event) Event {
	ev.Intercepted = true
	g.emit(ev)
	start := time.Now()
	p := *g.proxy // per flow: OnRequest knows this flow's event
	p.OnRequest = func(r mitm.Request) {
		g.emit(Event{Kind: "request", Proto: "tcp", Name: r.Host, IP: ev.IP, Port: ev.Port, Allowed: r.Err == "",
			Rule: "secret:" + b.Host, Method: r.Method, Status: r.Status, SecretInjected: r.Injected, Error: r.Err,
			TraceID: ev.TraceID, SpanID: ev.SpanID})
	}
	rc := &replayConn{Conn: conn, r: io.MultiReader(bytes.NewReader(head), conn)}
	if err := p.Serve(g.ctx, rc, b, netip.AddrPortFrom(ev.IP, ev.Port).String()); err != nil {
		ev.Error = err.Error()
	}
	ev.Kind, ev.Duration = "close", time.Since(start)
	g.emit(ev)
	return ev
}

// replayConn is a conn whose first bytes are replayed from r.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }
