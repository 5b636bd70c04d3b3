package oci

import (
	"fmt"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Network is what the backend prepared on the host for a sandbox in
// network mode "gateway". Paths are host paths.
type Network struct {
	// Netns is the network namespace the sandbox joins (prepared by its
	// supervisor, owned by the host's user namespace). Required.
	Netns string
	// Sysfs is a sysfs mounted from inside that namespace, bound
	// read-only at /sys: a sandbox in a child user namespace may not
	// mount a sysfs for a network namespace it does not own, and the
	// host's would show the host's interfaces. Empty keeps the runtime's
	// own /sys (gVisor's Sentry has one of its own, showing its netstack).
	Sysfs string
	// FilesDir is bound read-only at backend.NetFilesDir. Required.
	FilesDir string
	// ResolvConf is bound read-only at /etc/resolv.conf. Required.
	ResolvConf string
	// CABundle, if set, is bound read-only over each of CABundleTargets
	// (paths in the sandbox).
	CABundle        string
	CABundleTargets []string
}

func (n *Network) validate() error {
	for _, p := range []string{n.Netns, n.FilesDir, n.ResolvConf} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%w: network mode gateway: host path %q must be absolute", errdefs.ErrInvalidArgument, p)
		}
	}
	if n.Sysfs != "" && !filepath.IsAbs(n.Sysfs) {
		return fmt.Errorf("%w: network mode gateway: sysfs %q must be an absolute path", errdefs.ErrInvalidArgument, n.Sysfs)
	}
	if n.CABundle != "" && !filepath.IsAbs(n.CABundle) {
		return fmt.Errorf("%w: network mode gateway: CA bundle %q must be an absolute path", errdefs.ErrInvalidArgument, n.CABundle)
	}
	for _, t := range n.CABundleTargets {
		if err := checkTarget(t); err != nil {
			return err
		}
	}
	return nil
}

// networkMounts returns the mounts of a gateway sandbox that go after the
// image's: its files, resolv.conf and the CA bundle.
func (n *Network) mounts() []specs.Mount {
	out := []specs.Mount{
		BindMount(n.FilesDir, backend.NetFilesDir, true),
		BindMount(n.ResolvConf, "/etc/resolv.conf", true),
	}
	if n.CABundle != "" {
		for _, t := range n.CABundleTargets {
			out = append(out, BindMount(n.CABundle, t, true))
		}
	}
	return out
}

// withSysfs replaces the sysfs mount of ms by a read-only bind of src.
func withSysfs(ms []specs.Mount, src string) []specs.Mount {
	for i, m := range ms {
		if m.Destination == "/sys" {
			b := BindMount(src, "/sys", true)
			b.Options = append(b.Options, "noexec")
			ms[i] = b
		}
	}
	return ms
}
