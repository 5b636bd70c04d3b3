package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// installSelf copies the running binary to path, mode 0755 (readable and
// runnable by any user the sandbox runs as). A pod's init container
// delivers the agent this way, with no shell in its image.
func installSelf(path string) error {
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, self, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // past the umask
		return err
	}
	return os.Rename(tmp, path)
}

// removeLinks deletes every network interface of the caller's network
// namespace but lo, so that a pod's sandbox, whose profile gives it no
// network, has none, whatever the cluster's CNI does with NetworkPolicies.
// It needs CAP_NET_ADMIN in that namespace. It fails if an interface stays.
func removeLinks() error {
	links, err := netlink.LinkList()
	if err != nil {
		return fmt.Errorf("listing interfaces: %w", err)
	}
	for _, l := range links {
		if l.Attrs().Name == "lo" {
			continue
		}
		// deleting one end of a veth pair deletes the other
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("removing interface %s: %w", l.Attrs().Name, err)
		}
	}
	links, err = netlink.LinkList()
	if err != nil {
		return fmt.Errorf("listing interfaces: %w", err)
	}
	if len(links) != 1 {
		return fmt.Errorf("%d interfaces left after removing all but lo", len(links))
	}
	return nil
}
