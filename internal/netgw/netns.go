package netgw

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// NewNetns creates the network namespace of a sandbox whose only way out is
// a Gateway: a fresh namespace owned by the calling process's user namespace
// (the host's, for a supervisor running as root), so that root in a sandbox
// that joins it from a child user namespace has no CAP_NET_ADMIN over it and
// cannot reconfigure it. Inside, lo is up and a tap device named tapName is
// configured from n: address SandboxAddr/PrefixLen, MTU, IPv6 off (the
// gateway drops it), up, and the default route via GatewayAddr. Nothing
// changes in the caller's own namespace.
//
// It returns the namespace, as an open file on its nsfs inode (the
// namespace lives while this file or anything else holds it; join it with
// setns or by the path /proc/<pid>/fd/<fd>), and the tap's fd for
// AttachTap; the caller owns both. Needs CAP_SYS_ADMIN and CAP_NET_ADMIN.
// The work runs on a dedicated, locked OS thread, which is discarded if it
// cannot return to its original namespace.
func NewNetns(tapName string, n Network) (ns *os.File, tapFD int, err error) {
	if !n.SandboxAddr.Is4() || !n.GatewayAddr.Is4() || n.PrefixLen < 8 || n.PrefixLen > 30 || n.MTU < 576 || n.MTU > 65000 {
		return nil, -1, fmt.Errorf("netgw: netns link %+v: %w", n, errdefs.ErrInvalidArgument)
	}
	type result struct {
		ns  *os.File
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread unless the thread is back in its own
		// namespace: a locked goroutine's thread exits with it.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netgw: opening the current netns: %w", err)}
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netgw: creating a network namespace: %w", err)}
			return
		}
		ns, fd, err := configureNetns(tapName, n)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread, stuck in the new namespace, exits with us
		done <- result{ns, fd, err}
	}()
	r := <-done
	return r.ns, r.fd, r.err
}

// configureNetns sets up the calling thread's (new) network namespace.
func configureNetns(tapName string, n Network) (_ *os.File, _ int, retErr error) {
	ns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, -1, fmt.Errorf("netgw: opening the new netns: %w", err)
	}
	fd, err := CreateTap(tapName)
	if err != nil {
		ns.Close()
		return nil, -1, err
	}
	defer func() {
		if retErr != nil {
			unix.Close(fd)
			ns.Close()
		}
	}()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, -1, fmt.Errorf("netgw: netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return nil, -1, fmt.Errorf("netgw: bringing lo up: %w", err)
	}
	tap, err := h.LinkByName(tapName)
	if err != nil {
		return nil, -1, fmt.Errorf("netgw: finding %s: %w", tapName, err)
	}
	if err := h.LinkSetMTU(tap, int(n.MTU)); err != nil {
		return nil, -1, fmt.Errorf("netgw: MTU %d on %s: %w", n.MTU, tapName, err)
	}
	// Without IPv6 the sandbox sends no router solicitations or DAD
	// probes the gateway would drop, and programs do not wait on v6.
	err = os.WriteFile("/proc/sys/net/ipv6/conf/"+tapName+"/disable_ipv6", []byte("1"), 0)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, -1, fmt.Errorf("netgw: disabling IPv6 on %s: %w", tapName, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(n.SandboxAddr.AsSlice()), Mask: net.CIDRMask(n.PrefixLen, 32)}}
	if err := h.AddrAdd(tap, addr); err != nil {
		return nil, -1, fmt.Errorf("netgw: address %s/%d on %s: %w", n.SandboxAddr, n.PrefixLen, tapName, err)
	}
	if err := h.LinkSetUp(tap); err != nil {
		return nil, -1, fmt.Errorf("netgw: bringing %s up: %w", tapName, err)
	}
	route := &netlink.Route{LinkIndex: tap.Attrs().Index, Gw: net.IP(n.GatewayAddr.AsSlice()), Scope: netlink.SCOPE_UNIVERSE}
	if err := h.RouteAdd(route); err != nil {
		return nil, -1, fmt.Errorf("netgw: default route via %s: %w", n.GatewayAddr, err)
	}
	return ns, fd, nil
}
