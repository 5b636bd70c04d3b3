package oci

import (
	"errors"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func capSpec(caps ...string) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
}

func personalityArgs(sc *specs.LinuxSeccomp) []uint64 {
	var v []uint64
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActAllow && slices.Contains(r.Names, "personality") {
			if len(r.Args) != 1 {
				return append(v, 1<<63) // unconditional: a sentinel no test expects
			}
			v = append(v, r.Args[0].Value)
		}
	}
	slices.Sort(v)
	return v
}

func TestSeccompDefault(t *testing.T) {
	sc, err := Seccomp("default", capSpec(defaultCapabilities...))
	if err != nil {
		t.Fatal(err)
	}
	if sc.DefaultAction != specs.ActErrno || sc.DefaultErrnoRet == nil || *sc.DefaultErrnoRet != 1 {
		t.Errorf("default action %v ret %v, want EPERM", sc.DefaultAction, sc.DefaultErrnoRet)
	}
	for _, ok := range []string{"read", "execve", "ptrace", "process_vm_readv", "chroot"} {
		if !Allowed(sc, ok) {
			t.Errorf("%s not allowed by the default profile", ok)
		}
	}
	// Without CAP_SYS_ADMIN these stay denied.
	for _, no := range []string{"mount", "unshare", "setns", "keyctl", "add_key", "bpf", "reboot", "init_module", "open_by_handle_at"} {
		if Allowed(sc, no) {
			t.Errorf("%s allowed by the default profile", no)
		}
	}
	if got := personalityArgs(sc); len(got) < 3 {
		t.Errorf("personality args %x", got)
	}
}

func TestSeccompStrict(t *testing.T) {
	sc, err := Seccomp("strict", capSpec(defaultCapabilities...))
	if err != nil {
		t.Fatal(err)
	}
	for _, no := range append(slices.Clone(strictDenied), "mount", "unshare", "keyctl") {
		if Allowed(sc, no) {
			t.Errorf("%s allowed by the strict profile", no)
		}
		for _, r := range sc.Syscalls {
			if r.Action == specs.ActAllow && slices.Contains(r.Names, no) {
				t.Errorf("%s has a conditional allow rule %+v", no, r)
			}
		}
	}
	if got := personalityArgs(sc); !slices.Equal(got, []uint64{0, 0xffffffff}) {
		t.Errorf("personality args %x, want [0 ffffffff]", got)
	}
	for _, ok := range []string{"read", "write", "execve", "wait4"} {
		if !Allowed(sc, ok) {
			t.Errorf("%s denied by the strict profile", ok)
		}
	}
	// The default profile is unchanged by building a strict one.
	def, _ := Seccomp("default", capSpec(defaultCapabilities...))
	if !Allowed(def, "ptrace") {
		t.Error("building the strict profile changed the default one")
	}
}

func TestSeccompErrors(t *testing.T) {
	if _, err := Seccomp("off", capSpec()); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown profile: %v", err)
	}
	if _, err := Seccomp("default", &specs.Spec{}); err == nil {
		t.Error("spec without capabilities accepted")
	}
}

func TestCapabilities(t *testing.T) {
	got, err := Capabilities(nil)
	if err != nil || !slices.Equal(got, defaultCapabilities) {
		t.Errorf("nil: %v %v", got, err)
	}
	got, err = Capabilities([]string{})
	if err != nil || len(got) != 0 {
		t.Errorf("empty list keeps nothing: %v %v", got, err)
	}
	for _, bad := range []string{"SYS_ADMIN", "CAP_SYS_PTRACE", "net_admin", "CAP_BPF", "", "CAP_"} {
		if _, err := Capabilities([]string{bad}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
