package container

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// A sandbox in network mode "gateway" joins the network namespace its
// supervisor prepared (backend.NetworkAttachment.Netns): owned by the
// host's user namespace, with lo and a tap eth0 whose other end is the
// gateway. Root in the sandbox has no CAP_NET_ADMIN over it. Two things
// follow from that ownership:
//
//   - The sandbox cannot mount a sysfs for it (the kernel requires
//     CAP_SYS_ADMIN over the namespace's owner), and the host's /sys would
//     show the host's interfaces. So the backend mounts a sysfs from inside
//     the namespace at <RootfsDir>/../sysfs/<id> (outside the home, so
//     that nothing walking the home descends into it) and binds it
//     read-only at /sys; teardown unmounts it.
//   - The namespace's addresses and routes are set once, by the
//     supervisor, and stay as they are.
//
// StateDir/net holds resolv.conf (the gateway as the only nameserver) and,
// when secrets are bound, the sandbox's CA and a CA bundle (the image's
// system bundle, else the host's, plus the sandbox's CA). The directory is
// bound read-only at backend.NetFilesDir, resolv.conf over /etc/resolv.conf
// and the bundle over each system bundle the image has.

// maxBundleBytes bounds a CA bundle read from an image or the host.
const maxBundleBytes = 16 << 20

// prepareNetwork makes what a gateway sandbox needs on the host and
// returns it for oci.Generate; nil for the other network modes. etcRoot is
// the host image's /etc copy ("" for an imported image, whose files are
// read from the mounted rootfs).
func (b *Backend) prepareNetwork(ctx context.Context, s *backend.Spec, l layout, etcRoot string) (*oci.Network, error) {
	if s.Security.Network != "gateway" {
		return nil, nil
	}
	if s.Gateway == nil || s.Gateway.Attach == nil || s.Gateway.Attach.Netns == nil {
		return nil, fmt.Errorf("%w: network mode gateway without a gateway to attach to (a sandbox with a network starts under its supervisor)",
			errdefs.ErrFailedPrecondition)
	}
	att := s.Gateway.Attach
	nsPath, err := att.Netns(ctx)
	if err != nil {
		return nil, fmt.Errorf("the sandbox's network namespace: %w", err)
	}
	sysfs := ""
	if b.opts.Flavor != GVisor { // gVisor's Sentry has its own sysfs
		if err := removeRootfs(l.sysfs); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(l.sysfs), 0o700); err != nil {
			return nil, err
		}
		if err := os.Mkdir(l.sysfs, 0o755); err != nil {
			return nil, err
		}
		if err := mountSysfsIn(nsPath, l.sysfs); err != nil {
			return nil, err
		}
		sysfs = l.sysfs
	}
	if err := os.RemoveAll(l.netFiles); err != nil {
		return nil, err
	}
	if err := os.Mkdir(l.netFiles, 0o755); err != nil {
		return nil, err
	}
	n := &oci.Network{Netns: nsPath, Sysfs: sysfs, FilesDir: l.netFiles, ResolvConf: filepath.Join(l.netFiles, "resolv.conf")}
	resolv := fmt.Sprintf("# agentkernel: the sandbox's network gateway\nnameserver %s\n", att.Link.GatewayAddr)
	if err := os.WriteFile(n.ResolvConf, []byte(resolv), 0o644); err != nil {
		return nil, err
	}
	if att.CACert == nil {
		return n, nil
	}
	if err := os.WriteFile(filepath.Join(l.netFiles, "ca.pem"), att.CACert, 0o644); err != nil {
		return nil, err
	}
	var base []byte
	for _, p := range backend.CABundlePaths {
		var content []byte
		if etcRoot != "" {
			content, err = readNoSymlinks(etcRoot, strings.TrimPrefix(p, "/etc/"))
		} else {
			content, err = readNoSymlinks(l.rootfs, strings.TrimPrefix(p, "/"))
		}
		if err != nil {
			continue // absent, or not a plain file: left alone
		}
		n.CABundleTargets = append(n.CABundleTargets, p)
		if base == nil {
			base = content
		}
	}
	if base == nil {
		// An image without a bundle: the host's roots, so that
		// SSL_CERT_FILE still verifies hosts that are not intercepted.
		for _, p := range backend.CABundlePaths {
			if content, err := readNoSymlinks("/", strings.TrimPrefix(p, "/")); err == nil {
				base = content
				break
			}
		}
	}
	bundle := bytes.TrimRight(base, "\n")
	if len(bundle) > 0 {
		bundle = append(bundle, '\n')
	}
	bundle = append(bundle, att.CACert...)
	n.CABundle = filepath.Join(l.netFiles, "ca-bundle.pem")
	if err := os.WriteFile(n.CABundle, bundle, 0o644); err != nil {
		return nil, err
	}
	return n, nil
}

// readNoSymlinks reads the regular file rel under root without following
// any symlink (an image's files are not to be trusted with host paths).
func readNoSymlinks(root, rel string) ([]byte, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, rel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", rel)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxBundleBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBundleBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", rel, maxBundleBytes)
	}
	return b, nil
}

// mountSysfsIn mounts, at target, a read-only sysfs as seen from the
// network namespace at nsPath. It runs on a locked thread that joins the
// namespace for the mount and is discarded if it cannot leave it.
func mountSysfsIn(nsPath, target string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening the sandbox's netns: %w", err)
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("joining the sandbox's netns: %w", err)
			return
		}
		err = unix.Mount("sysfs", target, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		if err != nil {
			err = fmt.Errorf("%w: mounting the sandbox's sysfs: %v", errdefs.ErrFailedPrecondition, err)
		}
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread exits with this goroutine
		errc <- err
	}()
	return <-errc
}
