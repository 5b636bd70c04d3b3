package container

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// newGVisorEnv is newEnv with the gvisor flavor; it skips when runsc is in
// neither the cache scripts/runsc.sh fills nor PATH.
func newGVisorEnv(t *testing.T) *env {
	t.Helper()
	requireRunc(t)
	if _, err := findRunsc("", ""); err != nil {
		t.Skipf("runsc is not installed (scripts/runsc.sh builds it into %s): %v", DefaultRunscCache, err)
	}
	e := newEnv(t)
	e.opts.Flavor = GVisor
	e.opts.Runtime = ""
	e.opts.RuntimeRoot = filepath.Join(e.home, "runsc")
	e.b = New(e.opts)
	return e
}

// TestGVisorConformance runs the backend contract's suite, and the guest
// agent's through it, on runsc.
func TestGVisorConformance(t *testing.T) {
	e := newGVisorEnv(t)
	t.Logf("platform %s", e.b.Platform(context.Background()))
	runConformance(t, e)
}

// TestGVisorIsGVisor checks that the sandbox really runs on gVisor's
// kernel and that its instance claims no runc-only extras.
func TestGVisorIsGVisor(t *testing.T) {
	e := newGVisorEnv(t)
	if c := e.b.Capabilities(); c.Isolation != "gvisor" || !c.Pause || c.Resize || e.b.Name() != "gvisor" {
		t.Fatalf("capabilities %+v, name %s", c, e.b.Name())
	}
	inst := e.start(t, e.spec(t))
	if got := sh(t, inst, "cat /proc/version"); !strings.Contains(got, "gvisor") {
		t.Errorf("not gVisor's kernel: %q", got)
	}
	if _, ok := inst.(backend.HostnameSetter); ok {
		t.Error("a gvisor instance claims to set its host name from the host")
	}
	if _, ok := inst.(backend.ResourceUpdater); ok {
		t.Error("a gvisor instance claims to resize")
	}
}

// TestGVisorSeccomp checks that both profiles are enforced on gVisor as
// written: a syscall the profile denies fails with EPERM, clone3 with the
// ENOSYS the profile names (the agent's filter; runsc alone would say
// EPERM and glibc could start no thread).
func TestGVisorSeccomp(t *testing.T) {
	e := newGVisorEnv(t)
	for _, profile := range []string{"default", "strict"} {
		t.Run(profile, func(t *testing.T) {
			s := e.spec(t)
			s.Security.Seccomp = profile
			s.Mounts = append(s.Mounts, backend.Mount{HostPath: filepath.Dir(probeBin), Path: "/probe", ReadOnly: true})
			inst := e.start(t, s)
			want := map[int]string{unix.SYS_CLONE3: "ENOSYS", unix.SYS_KEYCTL: "EPERM", unix.SYS_UNSHARE: "EPERM"}
			if profile == "strict" {
				want[unix.SYS_KCMP] = "EPERM"
				want[unix.SYS_USERFAULTFD] = "EPERM"
			}
			for nr, w := range want {
				if got := sh(t, inst, fmt.Sprintf("/probe/probe syscall %d", nr)); got != w {
					t.Errorf("syscall %d: %q, want %q", nr, got, w)
				}
			}
		})
	}
}

func TestGVisorSeccompRefused(t *testing.T) {
	five, one := uint(5), uint(1)
	ok := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &one, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"read"}, Action: specs.ActAllow},
		{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &five},
	}}
	if got, err := gvisorSeccomp(ok); err != nil || got != fmt.Sprintf("%d:5", unix.SYS_CLONE3) {
		t.Fatalf("%q %v", got, err)
	}
	for name, sc := range map[string]*specs.LinuxSeccomp{
		"none":          nil,
		"default allow": {DefaultAction: specs.ActAllow},
		"default errno": {DefaultAction: specs.ActErrno, DefaultErrnoRet: &five},
		"unknown":       {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, ErrnoRet: &five}}},
		"args": {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &five,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}}}},
		"log": {DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActLog}}},
	} {
		if _, err := gvisorSeccomp(sc); !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestGVisorLoopback: without a gateway the Sentry has its loopback
// interface and nothing else.
func TestGVisorLoopback(t *testing.T) {
	e := newGVisorEnv(t)
	for _, mode := range []string{"none", "loopback"} {
		s := e.spec(t)
		s.Security.Network = mode
		inst := e.start(t, s)
		if got := sh(t, inst, `tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '`); got != "lo" {
			t.Errorf("network %s: interfaces %q, want lo", mode, got)
		}
	}
}
