package guestinit

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/mountinfo"
)

// The sandbox's processes live in a PID namespace of their own inside the
// VM, as on the other backends: `ps` in a sandbox shows the agent and what
// it started, not the guest kernel's threads. So the VM's init (stage 1:
// Boot) does not serve itself: it starts the agent again in new PID and
// mount namespaces (stage 2), where the agent is PID 1 with its own /proc,
// and powers the VM off when that agent exits (a shutdown it was asked
// for, or a crash).

// Environment variables that carry stage 1's results to stage 2; stage 2
// removes them before anything else runs.
const (
	envPort  = "AGENTKERNEL_VM_PORT"
	envDebug = "AGENTKERNEL_VM_DEBUG"
)

// StartSandbox runs the agent binary (this program) again as stage 2 in
// new PID and mount namespaces, with the same arguments, and waits for it.
// It returns the stage 2 agent's exit error.
func StartSandbox(log *slog.Logger, cfg *Config, port string) error {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = "agentkernel-agent"
	cmd.Env = append(os.Environ(), envPort+"="+port)
	if cfg.Debug {
		cmd.Env = append(cmd.Env, envDebug+"=1")
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("guestinit: starting the sandbox's agent: %w", err)
	}
	return cmd.Wait()
}

// Stage2 reports whether this process is the agent of stage 2, and if so
// prepares its namespaces (a private mount tree with a /proc of the new
// PID namespace) and returns the port to serve on.
func Stage2() (port string, debug bool, ok bool, err error) {
	port = os.Getenv(envPort)
	if port == "" || os.Getpid() != 1 {
		return "", false, false, nil
	}
	debug = os.Getenv(envDebug) != ""
	os.Unsetenv(envPort)
	os.Unsetenv(envDebug)
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "", false, true, fmt.Errorf("guestinit: private mounts: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return "", false, true, fmt.Errorf("guestinit: mounting /proc: %w", err)
	}
	// The raw disks under /run/ak (the overlay's layers, the writable
	// disk that also backs /tmp) are stage 1's business: the sandbox sees
	// its files once, through the root and /tmp, which keep the disks
	// mounted after they leave this namespace.
	if err := hideDisks(); err != nil {
		return "", false, true, err
	}
	return port, debug, true, nil
}

// hideDisks detaches every mount under /run/ak from this mount namespace.
func hideDisks() error {
	ms, err := mountinfo.Read("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("guestinit: %w", err)
	}
	var targets []string
	for _, m := range ms {
		if m.Target == "/run/ak" || strings.HasPrefix(m.Target, "/run/ak/") {
			targets = append(targets, m.Target)
		}
	}
	// Deepest first.
	slices.SortFunc(targets, func(a, b string) int { return len(b) - len(a) })
	for _, t := range targets {
		if err := unix.Unmount(t, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("guestinit: hiding %s: %w", t, err)
		}
	}
	return nil
}
