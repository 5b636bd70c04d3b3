// Package netgw is agentkernel's per-sandbox network gateway: a user-space
// TCP/IP stack (gVisor's netstack) that is a sandbox's only network peer.
//
// A Gateway is fed ethernet frames from one attachment: a tap device in the
// sandbox's network namespace (AttachTap; container and gVisor backends) or
// QEMU's "-netdev stream" socket (AttachStream; microVM backend). The stack is
// promiscuous and spoofs any source address, so it terminates every TCP and
// UDP flow the sandbox starts, whatever its destination; nothing is routed,
// NATed or bridged on the host. The sandbox sees one /30 (by default
// 100.96.0.2, gateway 100.96.0.1) and reaches the world only as follows:
//
//   - DNS at the gateway address (UDP and TCP port 53), served by package
//     dns: only names the policy allows, never answers inside forbidden
//     ranges, and every answer remembered per sandbox.
//   - TCP: decided from the SYN, before any endpoint exists. A flow is
//     refused at once with a RST unless its destination is outside the
//     forbidden ranges and either a CIDR rule (or the permissive profile)
//     allows it, or the sandbox resolved that address for a name the policy
//     allows and the port is one of the policy's domain ports. For port 443
//     the TLS ClientHello's server name, and for port 80 the HTTP Host, must
//     then be one of the names that address was resolved for; otherwise the
//     flow is reset. An allowed flow is dialled from the host with
//     net.Dialer, to the address the sandbox asked for, and spliced; a flow
//     that needs no inspection is dialled before its handshake completes, so
//     an upstream refusal reaches the sandbox as a refusal.
//   - HTTPS to a host with a secret binding (Config.Secrets) is terminated
//     with the sandbox's own CA and each request gets the real credential
//     (package mitm); no other host is intercepted.
//   - UDP: only what a CIDR rule (or the permissive profile) allows; a name
//     cannot be checked on UDP, so resolved names do not open UDP.
//   - Inbound: Publish forwards a loopback port of the host to a port of
//     the sandbox.
//   - IPv6 is not spoken at all (its frames are dropped); ARP and ICMP echo
//     are answered by the stack.
//
// Forbidden ranges (loopback, RFC 1918, link-local and cloud metadata
// addresses, CGNAT, multicast, reserved, and the host's own addresses and
// on-link subnets) win over every policy. Every decision is an audit Event.
//
// # Use by a supervisor
//
//	gw, err := netgw.New(netgw.Config{Sandbox: id, Policy: p, Audit: sink, Logger: log})
//	n := gw.Network() // configure the sandbox side from this
//	ns, fd, err := netgw.NewNetns("eth0", n) // a namespace with lo and a tap
//	// addressed n.SandboxAddr/n.PrefixLen, MTU n.MTU, default via n.GatewayAddr;
//	// the sandbox joins ns and its resolv.conf says "nameserver <n.GatewayAddr>"
//	err = gw.AttachTap(fd) // or gw.AttachStream(qemuConn) for a microVM
//	addr, stop, err := gw.Publish(netip.MustParseAddrPort("127.0.0.1:8080"), 80)
//	err = gw.SetPolicy(newPolicy) // live
//	gw.Close() // then ns.Close()
//
// A larger MTU (Config.MTU, up to 65000, set on both sides) makes bulk
// transfers several times faster: the link is virtual and every flow is
// terminated at the gateway, so it never meets a real network's MTU.
//
// Known limits, by design of SNI/Host checking: a client can send one name in
// the ClientHello and another inside the encrypted stream (domain fronting),
// or a second HTTP/1.1 request with another Host on a kept-alive connection;
// both reach only addresses resolved for an allowed name.
package netgw
