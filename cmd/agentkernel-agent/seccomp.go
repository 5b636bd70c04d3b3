package main

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// --seccomp-errno NR:ERRNO[,NR:ERRNO...] makes the agent, before it serves,
// install a seccomp filter on itself (all its threads, TSYNC, so every
// process it starts inherits it) that answers syscall NR with ERRNO and
// lets everything else through to the filters installed before it.
//
// The gvisor backend needs it: runsc enforces the OCI profile but answers
// every SCMP_ACT_ERRNO with EPERM (gVisor issue 14688), and the profiles
// deny clone3 with ENOSYS so that glibc falls back to clone, whose flags
// the profile can check. Filters are evaluated newest first and, between
// equal actions, the first seen wins (Linux and gVisor alike), so this
// filter's ENOSYS is what a process sees, while runsc's filter still
// denies the call. The backend passes only what runsc cannot express.

// auditArch is this build's AUDIT_ARCH_* (the numbers are the host's,
// which runs the same architecture).
func auditArch() (uint32, error) {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64, nil
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64, nil
	}
	return 0, fmt.Errorf("seccomp: unsupported architecture %s", runtime.GOARCH)
}

type errnoRule struct{ nr, errno uint32 }

func parseSeccompErrno(s string) ([]errnoRule, error) {
	var out []errnoRule
	for _, f := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(f, ":")
		nr, err1 := strconv.ParseUint(a, 10, 16)
		errno, err2 := strconv.ParseUint(b, 10, 12)
		if !ok || err1 != nil || err2 != nil || errno == 0 {
			return nil, fmt.Errorf("--seccomp-errno: bad rule %q (want NR:ERRNO)", f)
		}
		out = append(out, errnoRule{uint32(nr), uint32(errno)})
	}
	return out, nil
}

// errnoFilter is the BPF program for rules: other architectures and other
// syscalls are allowed (left to the earlier filters).
func errnoFilter(arch uint32, rules []errnoRule) []unix.SockFilter {
	const (
		ldAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
	)
	n := uint8(2*len(rules) + 1) // instructions between the arch check and the final allow
	prog := []unix.SockFilter{
		{Code: ldAbs, K: 4}, // seccomp_data.arch
		{Code: jeq, K: arch, Jt: 0, Jf: n},
		{Code: ldAbs, K: 0}, // seccomp_data.nr
	}
	for _, r := range rules {
		prog = append(prog,
			unix.SockFilter{Code: jeq, K: r.nr, Jt: 0, Jf: 1},
			unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ERRNO | r.errno})
	}
	return append(prog, unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW})
}

// installSeccompErrno installs the filter for spec on every thread.
func installSeccompErrno(spec string) error {
	rules, err := parseSeccompErrno(spec)
	if err != nil {
		return err
	}
	if len(rules) > 100 {
		return fmt.Errorf("--seccomp-errno: %d rules, at most 100", len(rules))
	}
	arch, err := auditArch()
	if err != nil {
		return err
	}
	prog := errnoFilter(arch, rules)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("seccomp: no_new_privs: %w", err)
	}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&fprog))); e != 0 {
		return fmt.Errorf("seccomp: installing the errno filter: %w", e)
	}
	runtime.KeepAlive(prog)
	return nil
}
