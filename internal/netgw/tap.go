package netgw

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// CreateTap creates a tap device named name (IFF_TAP|IFF_NO_PI, no vnet
// header: what AttachTap expects) in the calling thread's network
// namespace and returns its fd. The device lives as long as the fd; moving
// it into another namespace (ip link set NAME netns NS) keeps the fd valid.
// Needs CAP_NET_ADMIN.
func CreateTap(name string) (int, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return -1, fmt.Errorf("netgw: tap name %q: %w", name, errdefs.ErrInvalidArgument)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("netgw: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("netgw: tap name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("netgw: create tap %s: %w", name, err)
	}
	return fd, nil
}

// Network describes the link the sandbox side must configure: its
// interface address SandboxAddr/PrefixLen with MTU, a default route via
// GatewayAddr, and GatewayAddr as its only nameserver.
type Network struct {
	SandboxAddr, GatewayAddr netip.Addr
	PrefixLen                int
	MTU                      uint32
}

// Network returns the link parameters, defaults applied.
func (g *Gateway) Network() Network {
	return Network{SandboxAddr: g.cfg.SandboxAddr, GatewayAddr: g.cfg.GatewayAddr, PrefixLen: g.cfg.PrefixLen, MTU: g.cfg.MTU}
}
