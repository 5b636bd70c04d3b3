package netgw

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// How frames reach the stack: the attachment is pumped by two goroutines,
// as in Tailscale's netstack. The inbound pump reads one frame at a time,
// checks it (size, destination MAC, ethertype: IPv4 and ARP only) and
// injects it into a channel endpoint wrapped in gVisor's ethernet endpoint,
// so the stack processes it on the pump's goroutine. The outbound pump
// drains the channel endpoint's queue (OutQueue packets; the stack drops
// beyond that, and TCP recovers) and writes each frame to the attachment.
//
// gVisor's fdbased endpoint is not used: its readv dispatcher (the only one
// a tap fd can use) stops reading for good at the first frame sent to a
// foreign MAC, which a sandbox could send on purpose.

// OutQueue is the number of frames queued towards the sandbox.
const OutQueue = 1024

// AttachTap connects the gateway to a tap device (IFF_TAP|IFF_NO_PI, no
// vnet header) whose other end is the sandbox's interface. The gateway takes
// ownership of fd, even on error, and closes it in Close. At most one
// attachment per gateway.
func (g *Gateway) AttachTap(fd int) error {
	if fd < 0 {
		return fmt.Errorf("netgw: tap fd %d: %w", fd, errdefs.ErrInvalidArgument)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("netgw: tap fd: %w", err)
	}
	tap := os.NewFile(uintptr(fd), "netgw-tap") // non-blocking: uses the poller
	maxFrame := g.maxFrame()
	return g.attach(tap, func(buf []byte) (int, error) {
		// One read is one frame; a frame longer than buf is cut, and
		// then fails the size check.
		return tap.Read(buf)
	}, func(frame []byte) error {
		_, err := tap.Write(frame)
		return err
	}, maxFrame)
}

// AttachStream connects the gateway to a stream of ethernet frames each
// preceded by its length as a 4-byte big-endian integer: QEMU's
// "-netdev stream" (and "-netdev socket,connect=") framing. The gateway
// takes ownership of conn, even on error, and closes it in Close. A length
// outside [14, MTU+18] desynchronizes the stream: the gateway then stops
// reading it and logs why.
func (g *Gateway) AttachStream(conn net.Conn) error {
	maxFrame := g.maxFrame()
	var l [4]byte
	out := make([]byte, 4+maxFrame)
	return g.attach(conn, func(buf []byte) (int, error) {
		return readStreamFrame(conn, buf, l[:], maxFrame)
	}, func(frame []byte) error {
		// Called from one goroutine only: out is not shared.
		binary.BigEndian.PutUint32(out, uint32(len(frame)))
		n := copy(out[4:], frame)
		_, err := conn.Write(out[:4+n])
		return err
	}, maxFrame)
}

// maxFrame is the longest frame accepted: MTU plus an ethernet header and
// room for one VLAN tag.
func (g *Gateway) maxFrame() int { return int(g.cfg.MTU) + header.EthernetMinimumSize + 4 }

// readStreamFrame reads one length-prefixed frame into buf.
func readStreamFrame(r io.Reader, buf, l []byte, maxFrame int) (int, error) {
	if _, err := io.ReadFull(r, l[:4]); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(l)
	if n < header.EthernetMinimumSize || n > uint32(maxFrame) || int(n) > len(buf) {
		return 0, fmt.Errorf("netgw: stream frame of %d bytes (limit %d): %w", n, maxFrame, errdefs.ErrInvalidArgument)
	}
	return io.ReadFull(r, buf[:n])
}

// frameOK reports whether a frame from the sandbox may enter the stack: at
// least an ethernet header, at most maxFrame, sent to mac or to a group
// address, and carrying IPv4 or ARP.
func frameOK(f []byte, mac []byte, maxFrame int) bool {
	if len(f) < header.EthernetMinimumSize || len(f) > maxFrame {
		return false
	}
	if !bytes.Equal(f[:6], mac) && f[0]&1 == 0 {
		return false
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case uint16(header.IPv4ProtocolNumber), uint16(header.ARPProtocolNumber):
		return true
	}
	return false
}

// attach wires an attachment into the stack: it creates the link
// endpoint, starts the pumps, creates the NIC and starts DNS. dev is the
// attachment (closed by Close, or on error); in reads one frame from it,
// out writes one.
func (g *Gateway) attach(dev io.Closer, in func([]byte) (int, error), out func([]byte) error, maxFrame int) error {
	g.mu.Lock()
	if g.closed || g.attached {
		g.mu.Unlock()
		dev.Close()
		return errNotAttachable("gateway already attached or closed")
	}
	g.attached = true
	g.mu.Unlock()

	ch := channel.New(OutQueue, g.cfg.MTU, tcpip.LinkAddress(g.cfg.MAC))
	// Close stops the outbound pump only after the stack has closed, and
	// lets it flush what is queued first (the resets of aborted flows), so
	// that the sandbox sees its connections reset rather than hang.
	outCtx, outCancel := context.WithCancel(context.Background())
	outDone := make(chan struct{})
	stop := func() {
		outCancel()
		select {
		case <-outDone:
		case <-time.After(time.Second):
		}
		dev.Close()
	}
	if !g.addStopper(stop) {
		outCancel()
		dev.Close()
		return errNotAttachable("gateway closed while attaching")
	}
	// From here on Close releases everything.

	var dropped atomic.Int64
	mac := []byte(g.cfg.MAC)
	ok := g.goTracked(func() {
		defer dev.Close()
		buf := make([]byte, maxFrame+1)
		for {
			n, err := in(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
					g.log.Warn("netgw: attachment failed", "err", err)
				}
				return
			}
			if !frameOK(buf[:n], mac, maxFrame) {
				if dropped.Add(1) == 1 {
					g.log.Info("netgw: dropping frames the gateway does not take (foreign MAC, IPv6, runt or oversize)")
				}
				continue
			}
			pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(buf[:n])})
			ch.InjectInbound(0, pkt) // the ethernet endpoint reads the type
			pkt.DecRef()
		}
	}) && g.goTracked(func() {
		defer close(outDone)
		buf := make([]byte, maxFrame)
		for {
			pkt := ch.ReadContext(outCtx)
			if pkt == nil {
				pkt = ch.Read() // flushing after Close: nil when empty
			}
			if pkt == nil {
				return
			}
			n := 0
			for _, v := range pkt.AsSlices() {
				n += copy(buf[n:], v)
			}
			pkt.DecRef()
			if err := out(buf[:n]); err != nil {
				dev.Close()
				return
			}
		}
	})
	if !ok {
		outCancel()
		return errNotAttachable("gateway closed while attaching")
	}
	return g.startNIC(ethernet.New(ch))
}

// startNIC creates the NIC on ep, addresses it, and starts the DNS server.
func (g *Gateway) startNIC(ep stack.LinkEndpoint) error {
	if err := g.stack.CreateNIC(nicID, ep); err != nil {
		return fmt.Errorf("netgw: create NIC: %s", err)
	}
	g.stack.SetPromiscuousMode(nicID, true)
	g.stack.SetSpoofing(nicID, true)
	gw := tcpip.AddrFrom4(g.cfg.GatewayAddr.As4())
	if err := g.stack.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: gw, PrefixLen: g.cfg.PrefixLen},
	}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("netgw: add address: %s", err)
	}
	g.stack.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: nicID}})

	laddr := tcpip.FullAddress{NIC: nicID, Addr: gw, Port: 53}
	udpConn, err := gonet.DialUDP(g.stack, &laddr, nil, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("netgw: DNS over UDP: %w", err)
	}
	tcpLn, err := gonet.ListenTCP(g.stack, laddr, ipv4.ProtocolNumber)
	if err != nil {
		udpConn.Close()
		return fmt.Errorf("netgw: DNS over TCP: %w", err)
	}
	if !g.addStopper(func() { udpConn.Close(); tcpLn.Close() }) {
		udpConn.Close()
		tcpLn.Close()
		return errNotAttachable("gateway closed while attaching")
	}
	ok := g.goTracked(func() {
		if err := g.dns.ServeUDP(g.ctx, udpConn); err != nil {
			g.log.Warn("netgw: DNS over UDP stopped", "err", err)
		}
	}) && g.goTracked(func() {
		if err := g.dns.ServeTCP(g.ctx, tcpLn); err != nil {
			g.log.Warn("netgw: DNS over TCP stopped", "err", err)
		}
	})
	if !ok {
		udpConn.Close()
		tcpLn.Close()
		return errNotAttachable("gateway closed while attaching")
	}
	g.log.Info("netgw: attached", "sandbox_addr", g.cfg.SandboxAddr, "gateway_addr", g.cfg.GatewayAddr, "mtu", g.cfg.MTU)
	return nil
}
