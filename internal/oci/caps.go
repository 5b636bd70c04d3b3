package oci

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// defaultCapabilities is what root in a sandbox keeps: enough to act as the
// owner of its files and to switch users, nothing that reaches the kernel's
// administrative interfaces (no SYS_ADMIN, NET_RAW, MKNOD, SYS_PTRACE).
var defaultCapabilities = []string{
	"CAP_AUDIT_WRITE",
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FOWNER",
	"CAP_FSETID",
	"CAP_KILL",
	"CAP_NET_BIND_SERVICE",
	"CAP_SETGID",
	"CAP_SETPCAP",
	"CAP_SETUID",
	"CAP_SYS_CHROOT",
}

// extraCapabilities may be asked for by a security profile on top of the
// default set. They are harmless inside a user namespace with the default
// seccomp filter; everything else (SYS_ADMIN, SYS_PTRACE, SYS_MODULE, BPF,
// NET_ADMIN, …) is refused because the seccomp profile would open the
// matching syscalls.
var extraCapabilities = []string{
	"CAP_IPC_LOCK",
	"CAP_LEASE",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETFCAP",
	"CAP_SYS_NICE",
}

// DefaultCapabilities returns a copy of the default capability set.
func DefaultCapabilities() []string { return slices.Clone(defaultCapabilities) }

// Capabilities resolves a profile's capability list: nil means the default
// set; names may omit the CAP_ prefix and are case-insensitive. A name
// outside the default and extra sets is an ErrInvalidArgument. The result is
// sorted and free of duplicates.
func Capabilities(names []string) ([]string, error) {
	if names == nil {
		return DefaultCapabilities(), nil
	}
	if len(names) > 64 {
		return nil, fmt.Errorf("%w: %d capabilities listed (at most 64)", errdefs.ErrInvalidArgument, len(names))
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		c := strings.ToUpper(strings.TrimSpace(n))
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(defaultCapabilities, c) && !slices.Contains(extraCapabilities, c) {
			return nil, fmt.Errorf("%w: capability %q is not permitted in a sandbox", errdefs.ErrInvalidArgument, n)
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
