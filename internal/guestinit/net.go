package guestinit

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setupNet configures the interface with cfg.MAC from cfg, adds the
// default route via the gateway, and provides the gateway's files. It runs
// after the switch into the new root.
func setupNet(cfg *NetConfig) error {
	addr, err := netip.ParseAddr(cfg.Addr)
	if err != nil || !addr.Is4() {
		return fmt.Errorf("guestinit: sandbox address %q: want IPv4", cfg.Addr)
	}
	gw, err := netip.ParseAddr(cfg.Gateway)
	if err != nil || !gw.Is4() {
		return fmt.Errorf("guestinit: gateway address %q: want IPv4", cfg.Gateway)
	}
	if cfg.PrefixLen < 1 || cfg.PrefixLen > 31 || cfg.MTU < 576 || cfg.MTU > 65535 {
		return fmt.Errorf("guestinit: bad link (prefix /%d, mtu %d)", cfg.PrefixLen, cfg.MTU)
	}
	ifname, err := ifaceByMAC(cfg.MAC)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("guestinit: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(cfg.MTU))
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("guestinit: %s mtu: %w", ifname, err)
	}
	if err := setIfAddr(fd, ifname, unix.SIOCSIFADDR, addr); err != nil {
		return err
	}
	mask := netip.AddrFrom4([4]byte(net.CIDRMask(cfg.PrefixLen, 32)))
	if err := setIfAddr(fd, ifname, unix.SIOCSIFNETMASK, mask); err != nil {
		return err
	}
	if err := linkUp(ifname); err != nil {
		return err
	}
	if err := addDefaultRoute(fd, gw); err != nil {
		return err
	}
	return netFiles(cfg)
}

// ifaceByMAC names the interface with the given hardware address.
func ifaceByMAC(mac string) (string, error) {
	want, err := net.ParseMAC(mac)
	if err != nil {
		return "", fmt.Errorf("guestinit: mac %q: %w", mac, err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("guestinit: %w", err)
	}
	for _, i := range ifs {
		if bytes.Equal(i.HardwareAddr, want) {
			return i.Name, nil
		}
	}
	return "", fmt.Errorf("guestinit: no interface with address %s", mac)
}

func setIfAddr(fd int, ifname string, req uint, a netip.Addr) error {
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return err
	}
	if err := ifr.SetInet4Addr(a.AsSlice()); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, req, ifr); err != nil {
		return fmt.Errorf("guestinit: %s address %s: %w", ifname, a, err)
	}
	return nil
}

// rtentry is struct rtentry of linux/route.h on 64-bit platforms.
type rtentry struct {
	pad1    uint64
	dst     unix.RawSockaddrInet4
	gateway unix.RawSockaddrInet4
	genmask unix.RawSockaddrInet4
	flags   uint16
	pad2    int16
	_       [4]byte
	pad3    uint64
	pad4    uintptr
	metric  int16
	_       [6]byte
	dev     uintptr
	mtu     uint64
	window  uint64
	irtt    uint16
	_       [6]byte
}

// addDefaultRoute adds "default via gw" (SIOCADDRT).
func addDefaultRoute(fd int, gw netip.Addr) error {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		return fmt.Errorf("guestinit: routes are set up on 64-bit guests only")
	}
	rt := rtentry{flags: unix.RTF_UP | unix.RTF_GATEWAY}
	rt.dst.Family, rt.genmask.Family, rt.gateway.Family = unix.AF_INET, unix.AF_INET, unix.AF_INET
	rt.gateway.Addr = gw.As4()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCADDRT, uintptr(unsafe.Pointer(&rt))); errno != 0 {
		return fmt.Errorf("guestinit: default route via %s: %w", gw, errno)
	}
	return nil
}

// netFiles fills FilesDir (a tmpfs, then read-only) and binds its files
// over /etc/resolv.conf and the image's CA bundles.
func netFiles(cfg *NetConfig) error {
	dir := filepath.Clean("/" + cfg.FilesDir)
	if err := mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=4m"); err != nil {
		return err
	}
	files := map[string][]byte{filepath.Join(dir, filepath.Base(cfg.ResolvConf)): []byte("nameserver " + cfg.Gateway + "\n")}
	resolv := filepath.Join(dir, filepath.Base(cfg.ResolvConf))
	var bundle string
	if len(cfg.CACert) > 0 {
		files[filepath.Join(dir, filepath.Base(cfg.CACertFile))] = cfg.CACert
		var b []byte
		for _, p := range cfg.BundlePaths {
			if c, err := os.ReadFile(p); err == nil {
				b = c
				break
			}
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			b = append(b, '\n')
		}
		bundle = filepath.Join(dir, filepath.Base(cfg.BundleFile))
		files[bundle] = append(b, cfg.CACert...)
	}
	for p, c := range files {
		if err := os.WriteFile(p, c, 0o644); err != nil {
			return fmt.Errorf("guestinit: %w", err)
		}
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("guestinit: making %s read-only: %w", dir, err)
	}
	if err := bindFileOver(resolv, "/etc/resolv.conf"); err != nil {
		return err
	}
	if bundle != "" {
		for _, p := range cfg.BundlePaths {
			if _, err := os.Stat(p); err == nil {
				if err := bindFileOver(bundle, p); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// bindFileOver binds src read-only over dst, replacing a symlink at dst
// (a resolv.conf pointing into /run) by an empty file first.
func bindFileOver(src, dst string) error {
	if fi, err := os.Lstat(dst); err == nil && fi.Mode()&os.ModeSymlink != 0 && strings.HasPrefix(dst, "/etc/resolv") {
		os.Remove(dst)
	}
	if _, err := os.Stat(dst); err != nil {
		os.MkdirAll(filepath.Dir(dst), 0o755) // an image may have no /etc
		if err := os.WriteFile(dst, nil, 0o644); err != nil {
			return fmt.Errorf("guestinit: creating %s: %w", dst, err)
		}
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("guestinit: binding %s over %s: %w", src, dst, err)
	}
	if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("guestinit: making %s read-only: %w", dst, err)
	}
	return nil
}
