package oci

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Paths inside every sandbox where agentkernel puts its own files.
const (
	// AgentDir holds the agent binary and its run directory.
	AgentDir = backend.AgentDir
	// AgentBinary is where the guest agent is bind-mounted (read-only).
	AgentBinary = "/.agentkernel/agent"
	// AgentRunDir is where the host's per-sandbox agent-run directory is
	// bind-mounted; the agent listens on AgentSocket in it.
	AgentRunDir = "/.agentkernel/run"
	// AgentSocketName is the agent socket's file name in AgentRunDir.
	AgentSocketName = "agent.sock"
	// AgentSocket is the agent's listening socket inside the sandbox.
	AgentSocket = AgentRunDir + "/" + AgentSocketName
)

// maskedPaths are hidden from the sandbox (bind-mounted over with /dev/null
// or an empty read-only tmpfs), as Docker does.
var maskedPaths = []string{
	"/proc/acpi",
	"/proc/asound",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/sys/devices/virtual/powercap",
	"/sys/firmware",
}

// readonlyPaths are remounted read-only, as Docker does.
var readonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// MaskedPaths returns a copy of the masked path list.
func MaskedPaths() []string { return append([]string(nil), maskedPaths...) }

// ReadonlyPaths returns a copy of the read-only path list.
func ReadonlyPaths() []string { return append([]string(nil), readonlyPaths...) }

// systemMounts are the kernel filesystems every sandbox gets. /dev is a
// fresh tmpfs; runc fills it with the default device nodes only (null, zero,
// full, random, urandom, tty, ptmx) since the spec lists no devices.
func systemMounts(tmpDir string, tmpBytes int64) []specs.Mount {
	tmp := specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", fmt.Sprintf("size=%d", tmpBytes)}}
	if tmpDir != "" {
		tmp = specs.Mount{Destination: "/tmp", Type: "bind", Source: tmpDir, Options: []string{"rbind", "nosuid", "nodev"}}
	}
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		// A fresh /tmp for every start, writable even with a read-only
		// root (see Config.TmpDir).
		tmp,
	}
}

// ValidateMount checks one user mount (see backend.ValidateMount).
func ValidateMount(m backend.Mount) error { return backend.ValidateMount(m) }

// checkTarget validates a path inside the sandbox that a mount will cover.
func checkTarget(p string) error { return backend.CheckMountTarget(p) }

// underAny reports whether p is one of dirs or below one of them.
func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// BindMount returns a hardened bind mount of a host path: nosuid, nodev,
// and recursively read-only when readOnly ("rro" needs mount_setattr, Linux
// 5.12; runc fails rather than leave submounts writable).
func BindMount(source, target string, readOnly bool) specs.Mount {
	opts := []string{"rbind", "nosuid", "nodev"}
	if readOnly {
		opts = append(opts, "ro", "rro")
	}
	return specs.Mount{Destination: target, Type: "bind", Source: source, Options: opts}
}

// userMounts validates and converts Spec.Mounts.
func userMounts(ms []backend.Mount) ([]specs.Mount, error) {
	if len(ms) > backend.MaxMounts {
		return nil, fmt.Errorf("%w: %d mounts (at most %d)", errdefs.ErrInvalidArgument, len(ms), backend.MaxMounts)
	}
	seen := map[string]bool{}
	out := make([]specs.Mount, 0, len(ms))
	for _, m := range ms {
		if err := ValidateMount(m); err != nil {
			return nil, err
		}
		if seen[m.Path] {
			return nil, fmt.Errorf("%w: two mounts at %q", errdefs.ErrInvalidArgument, m.Path)
		}
		seen[m.Path] = true
		out = append(out, BindMount(m.HostPath, m.Path, m.ReadOnly))
	}
	return out, nil
}
