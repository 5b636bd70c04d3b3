package microvm

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/agentkernel/agentkernel/internal/backend"
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

var hostnameRE = backend.HostnameRE

// resources applies defaults and refuses what the host cannot give.
func resources(r backend.Resources) (vcpus, memMB int, err error) {
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

// validate checks what Start needs from a spec before touching the host:
// the contract's checks, then this backend's own limits (read-only host
// directories only, at most maxDirs of them, a gateway reached by stream).
func validate(s *backend.Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if len(s.Volumes) > maxDirs {
		return fmt.Errorf("%w: %d volumes (at most %d on microvm)", errdefs.ErrInvalidArgument, len(s.Volumes), maxDirs)
	}
	for _, v := range s.Volumes {
		if v.Shared {
			// Two guest kernels writing one ext4 would corrupt it.
			return fmt.Errorf("%w: volume %q: a microVM cannot share a volume read-write (each VM has its own kernel and filesystem); mount it :ro or use the container or gvisor backend", errdefs.ErrInvalidArgument, v.Name)
		}
	}
	if len(s.Mounts) > maxDirs {
		return fmt.Errorf("%w: %d host directories (at most %d on microvm)", errdefs.ErrInvalidArgument, len(s.Mounts), maxDirs)
	}
	for _, m := range s.Mounts {
		if !m.ReadOnly {
			return fmt.Errorf("%w: writable host directories (--dir %s:%s) are not supported by the microvm backend (its guest kernel has no 9p, and virtiofsd is not used); read-only ones are copied in at start",
				errdefs.ErrNotImplemented, m.HostPath, m.Path)
		}
	}
	if s.Security.Network == "gateway" && s.Gateway.Attach.AttachStream == nil {
		return fmt.Errorf("%w: network mode gateway without a stream to attach to", errdefs.ErrInvalidArgument)
	}
	return nil
}

func hostnameOf(s *backend.Spec) string {
	switch {
	case s.Hostname != "":
		return s.Hostname
	case hostnameRE.MatchString(s.Name):
		return s.Name
	}
	return "sandbox"
}
