package oci

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Seccomp profile names accepted in sandbox.Security.Seccomp.
const (
	SeccompDefault = "default"
	SeccompStrict  = "strict"
)

// strictDenied are syscalls the strict profile removes from Docker's
// allowlist: cross-process memory access and inspection, and kernel
// interfaces with a long record of privilege escalations. A removed syscall
// falls to the profile's default action (EPERM).
var strictDenied = []string{
	"bpf",
	"kcmp",
	"perf_event_open",
	"pidfd_getfd",
	"process_madvise",
	"process_vm_readv",
	"process_vm_writev",
	"ptrace",
	"userfaultfd",
}

// personalityQuery and personalityLinux are the only personality(2)
// arguments the strict profile allows: reading the current persona, and the
// plain Linux persona every process starts with.
const (
	personalityQuery = 0xffffffff
	personalityLinux = 0
)

// Seccomp returns the syscall filter named by profile ("" means default) for
// a spec whose capabilities are already set: Docker's default profile opens
// some syscalls only when the matching capability is in the bounding set.
func Seccomp(profile string, s *specs.Spec) (*specs.LinuxSeccomp, error) {
	if s == nil || s.Process == nil || s.Process.Capabilities == nil {
		return nil, fmt.Errorf("%w: seccomp needs the spec's capabilities set first", errdefs.ErrInvalidArgument)
	}
	switch profile {
	case "", SeccompDefault, SeccompStrict:
	default:
		return nil, fmt.Errorf("%w: unknown seccomp profile %q (want %q or %q)",
			errdefs.ErrInvalidArgument, profile, SeccompDefault, SeccompStrict)
	}
	sc, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("building the default seccomp profile: %w", err)
	}
	if sc == nil || sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) == 0 {
		return nil, fmt.Errorf("%w: the default seccomp profile came out empty", errdefs.ErrFailedPrecondition)
	}
	if len(sc.Architectures) == 0 {
		return nil, fmt.Errorf("%w: no seccomp architectures for this platform", errdefs.ErrFailedPrecondition)
	}
	if profile == SeccompStrict {
		restrict(sc)
	}
	return sc, nil
}

// restrict turns the default profile into the strict one in place.
func restrict(sc *specs.LinuxSeccomp) {
	kept := sc.Syscalls[:0]
	for _, rule := range sc.Syscalls {
		if rule.Action != specs.ActAllow {
			kept = append(kept, rule)
			continue
		}
		rule.Names = slices.DeleteFunc(slices.Clone(rule.Names), func(n string) bool {
			return n == "personality" || slices.Contains(strictDenied, n) || strings.HasPrefix(n, "io_uring")
		})
		if len(rule.Names) > 0 {
			kept = append(kept, rule)
		}
	}
	for _, v := range []uint64{personalityLinux, personalityQuery} {
		kept = append(kept, specs.LinuxSyscall{
			Names:  []string{"personality"},
			Action: specs.ActAllow,
			Args:   []specs.LinuxSeccompArg{{Index: 0, Value: v, Op: specs.OpEqualTo}},
		})
	}
	sc.Syscalls = kept
}

// Allowed reports whether the filter has an unconditional allow rule for
// name. Conditional rules (with argument filters) do not count. It is meant
// for tests and diagnostics.
func Allowed(sc *specs.LinuxSeccomp, name string) bool {
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, name) {
			return true
		}
	}
	return false
}
