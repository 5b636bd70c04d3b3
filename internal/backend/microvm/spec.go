package microvm

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"

	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// layout is where a sandbox's files are in its StateDir.
type layout struct {
	dir      string
	console  string // the guest's serial console
	qemuLog  string // QEMU's own stdout and stderr
	initrd   string // rebuilt at every start
	writable string // the sandbox's writable disk, kept across starts
	pidFile  string
	vmFile   string
}

func layoutOf(dir string) layout {
	return layout{dir: dir,
		console: filepath.Join(dir, "console.log"), qemuLog: filepath.Join(dir, "qemu.log"),
		initrd: filepath.Join(dir, "initrd.cpio"), writable: filepath.Join(dir, "disk.ext4"),
		pidFile: filepath.Join(dir, "qemu.pid"), vmFile: filepath.Join(dir, VMFile)}
}

// maxDirs bounds the read-only host directories (one disk each).
const maxDirs = 8

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// resources applies defaults and refuses what the host cannot give.
func resources(r sandbox.Resources) (vcpus, memMB int, err error) {
	vcpus, memMB = r.VCPUs, r.MemoryMB
	if vcpus == 0 {
		vcpus = defaultVCPUs
	}
	if memMB == 0 {
		memMB = defaultMemoryMB
	}
	if vcpus < 0 || memMB < 0 {
		return 0, 0, fmt.Errorf("%w: negative vcpus or memory", errdefs.ErrInvalidArgument)
	}
	if n := runtime.NumCPU(); vcpus > n {
		return 0, 0, fmt.Errorf("%w: %d vcpus requested but this host has %d CPUs", errdefs.ErrInvalidArgument, vcpus, n)
	}
	if memMB < minMemoryMB {
		return 0, 0, fmt.Errorf("%w: %d MB of memory is too little to boot a microVM (at least %d)", errdefs.ErrInvalidArgument, memMB, minMemoryMB)
	}
	if total := hostMemoryMB(); total > 0 && memMB > total {
		return 0, 0, fmt.Errorf("%w: %d MB of memory requested but this host has %d MB", errdefs.ErrInvalidArgument, memMB, total)
	}
	return vcpus, memMB, nil
}

// hostMemoryMB reads MemTotal from /proc/meminfo (0 if unknown).
func hostMemoryMB() int {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}

// validate checks what Start needs from a spec before touching the host.
func validate(s *sandbox.Spec) error {
	if s == nil {
		return fmt.Errorf("%w: nil spec", errdefs.ErrInvalidArgument)
	}
	if err := oci.ValidateID(s.ID); err != nil {
		return err
	}
	if !filepath.IsAbs(s.StateDir) || filepath.Clean(s.StateDir) != s.StateDir {
		return fmt.Errorf("%w: state directory %q must be an absolute, clean path", errdefs.ErrInvalidArgument, s.StateDir)
	}
	if fi, err := os.Lstat(s.StateDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: state directory %s: not a directory (%v)", errdefs.ErrFailedPrecondition, s.StateDir, err)
	}
	if s.Rootfs.Host == (len(s.Rootfs.Layers) > 0) {
		return fmt.Errorf("%w: the rootfs must be either the host view or a list of layers", errdefs.ErrInvalidArgument)
	}
	for _, l := range s.Rootfs.Layers {
		if !filepath.IsAbs(l) || filepath.Clean(l) != l {
			return fmt.Errorf("%w: layer %q must be an absolute, clean path", errdefs.ErrInvalidArgument, l)
		}
	}
	if len(s.Mounts) > maxDirs {
		return fmt.Errorf("%w: %d host directories (at most %d on microvm)", errdefs.ErrInvalidArgument, len(s.Mounts), maxDirs)
	}
	for _, m := range s.Mounts {
		if err := oci.ValidateMount(m); err != nil {
			return err
		}
		if !m.ReadOnly {
			return fmt.Errorf("%w: writable host directories (--dir %s:%s) are not supported by the microvm backend (its guest kernel has no 9p, and virtiofsd is not used); read-only ones are copied in at start",
				errdefs.ErrNotImplemented, m.HostPath, m.Path)
		}
	}
	switch s.Security.Network {
	case "", "none", "loopback":
	case "gateway":
		if s.Gateway == nil || s.Gateway.Attach == nil || s.Gateway.Attach.AttachStream == nil {
			return fmt.Errorf("%w: network mode gateway without a gateway to attach to", errdefs.ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("%w: unknown network mode %q", errdefs.ErrInvalidArgument, s.Security.Network)
	}
	if s.Hostname != "" && !hostnameRE.MatchString(s.Hostname) {
		return fmt.Errorf("%w: hostname %q is not a valid host name label", errdefs.ErrInvalidArgument, s.Hostname)
	}
	total := 0
	for _, kv := range s.Env {
		k, _, ok := strings.Cut(kv, "=")
		total += len(kv)
		if !ok || k == "" || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("%w: environment entry %.64q is not KEY=VALUE", errdefs.ErrInvalidArgument, kv)
		}
	}
	if total > 256<<10 || len(s.Env) > 1024 {
		return fmt.Errorf("%w: environment too large (%d entries, %d bytes)", errdefs.ErrInvalidArgument, len(s.Env), total)
	}
	fi, err := os.Stat(s.AgentPath)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: agent binary %q: not an executable file (%v)", errdefs.ErrFailedPrecondition, s.AgentPath, err)
	}
	return nil
}

func hostnameOf(s *sandbox.Spec) string {
	switch {
	case s.Hostname != "":
		return s.Hostname
	case hostnameRE.MatchString(s.Name):
		return s.Name
	}
	return "sandbox"
}
