package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// ValidateName checks a sandbox name (api.ValidateSandboxName).
func ValidateName(name string) error { return api.ValidateSandboxName(name) }

// Defaults for resources left at zero.
const (
	DefaultMemoryMB  = 512
	DefaultVCPUs     = 1
	DefaultPidsLimit = 1024
	// DefaultDiskMB is the size of a sandbox's writable disk (sparse: it
	// takes host space only as it is written), which bounds everything
	// the sandbox writes.
	DefaultDiskMB = 10240
	// MinDiskMB is the smallest disk (ext4 with its journal fits well).
	MinDiskMB = 64
	// maxDiskMB catches unit mistakes (16 TiB); the daemon also refuses
	// a disk larger than the filesystem of its home.
	maxDiskMB = 16 << 20
	// maxTTL bounds a sandbox's lifetime extension, to catch unit mistakes.
	maxTTL = 365 * 24 * time.Hour
)

// ResolveResources applies defaults and refuses limits the host cannot give.
func ResolveResources(memoryMB, vcpus, diskMB int) (backend.Resources, error) {
	r := backend.Resources{MemoryMB: memoryMB, VCPUs: vcpus, PidsLimit: DefaultPidsLimit, DiskMB: diskMB}
	if r.MemoryMB == 0 {
		r.MemoryMB = DefaultMemoryMB
	}
	if r.DiskMB == 0 {
		r.DiskMB = DefaultDiskMB
	}
	if r.DiskMB < MinDiskMB || r.DiskMB > maxDiskMB {
		return r, fmt.Errorf("%w: disk_mb %d: want %d to %d", errdefs.ErrInvalidArgument, r.DiskMB, MinDiskMB, maxDiskMB)
	}
	if r.VCPUs == 0 {
		r.VCPUs = DefaultVCPUs
	}
	if r.MemoryMB < 16 {
		return r, fmt.Errorf("%w: memory_mb %d is below the 16 MB minimum", errdefs.ErrInvalidArgument, r.MemoryMB)
	}
	if r.VCPUs < 0 {
		return r, fmt.Errorf("%w: vcpus %d is negative", errdefs.ErrInvalidArgument, r.VCPUs)
	}
	if n := runtime.NumCPU(); r.VCPUs > n {
		return r, fmt.Errorf("%w: vcpus %d is more than this host's %d CPUs", errdefs.ErrInvalidArgument, r.VCPUs, n)
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err == nil {
		totalMB := int(uint64(si.Totalram) * uint64(si.Unit) / (1 << 20))
		if r.MemoryMB > totalMB {
			return r, fmt.Errorf("%w: memory_mb %d is more than this host's %d MB", errdefs.ErrInvalidArgument, r.MemoryMB, totalMB)
		}
	}
	return r, nil
}

// Profiles. The table follows upstream agentkernel's names; each setting is
// enforced by the backend or the sandbox does not start. "gateway" means
// the sandbox's only network peer is its own network gateway (package
// netgw), whose egress policy the profile also picks: moderate allows the
// package registries and git hosts, permissive any public address; neither
// ever reaches the host, the LAN or cloud metadata. "none" is a network
// namespace (or VM) with lo only. On a backend that cannot attach a gateway
// (Capabilities.NetworkGateway) the gateway profiles get "loopback": no
// network, as on "none".
//
//	profile      network    egress              root fs    seccomp  capabilities
//	permissive   gateway    any public address  writable   default  default set
//	moderate     gateway    registries, git     writable   default  default set
//	restrictive  none       nothing             read-only  strict   minimal set
//
// Upstream's permissive also mounts the current and home directories and
// passes the caller's environment; we never mount or pass anything the
// caller did not name (--dir, -e): deny by default.
const DefaultProfile = "moderate"

// minimalCaps is what root in a restrictive sandbox keeps: enough to own and
// chmod its own files and signal its own processes.
var minimalCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL"}

// ResolveProfile turns a profile name into enforced settings.
func ResolveProfile(name string) (backend.Security, error) {
	switch name {
	case "", DefaultProfile:
		return backend.Security{Profile: DefaultProfile, Network: "gateway", Seccomp: "default"}, nil
	case "permissive":
		return backend.Security{Profile: name, Network: "gateway", Seccomp: "default"}, nil
	case "restrictive":
		return backend.Security{Profile: name, Network: "none", Seccomp: "strict", ReadOnlyRoot: true, Capabilities: minimalCaps}, nil
	}
	return backend.Security{}, fmt.Errorf("%w: unknown profile %q: use permissive, moderate or restrictive", errdefs.ErrInvalidArgument, name)
}

// ParseDirMount parses "HOST[:SANDBOX[:ro]]" into a Mount. HOST must be an
// existing directory; SANDBOX defaults to /workspace.
func ParseDirMount(s string) (backend.Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) > 3 || parts[0] == "" {
		return backend.Mount{}, fmt.Errorf("%w: --dir %q: want HOSTDIR[:SANDBOXPATH[:ro]]", errdefs.ErrInvalidArgument, s)
	}
	m := backend.Mount{HostPath: parts[0], Path: "/workspace"}
	if len(parts) > 1 && parts[1] != "" {
		m.Path = parts[1]
	}
	if len(parts) == 3 {
		if parts[2] != "ro" && parts[2] != "rw" {
			return backend.Mount{}, fmt.Errorf("%w: --dir %q: the third field must be ro or rw", errdefs.ErrInvalidArgument, s)
		}
		m.ReadOnly = parts[2] == "ro"
	}
	if !filepath.IsAbs(m.HostPath) {
		return backend.Mount{}, fmt.Errorf("%w: --dir %q: the host path must be absolute", errdefs.ErrInvalidArgument, s)
	}
	if !filepath.IsAbs(m.Path) || filepath.Clean(m.Path) != m.Path || m.Path == "/" {
		return backend.Mount{}, fmt.Errorf("%w: --dir %q: the sandbox path must be absolute, clean and not /", errdefs.ErrInvalidArgument, s)
	}
	st, err := os.Stat(m.HostPath)
	if err != nil {
		return backend.Mount{}, fmt.Errorf("%w: --dir %q: %v", errdefs.ErrInvalidArgument, s, err)
	}
	if !st.IsDir() {
		return backend.Mount{}, fmt.Errorf("%w: --dir %q: not a directory", errdefs.ErrInvalidArgument, s)
	}
	return m, nil
}

// ParseTTL parses a TTL such as "30m", "2h" or upstream's "1d"; "" means
// none. It accepts what the API's durations accept, up to maxTTL.
func ParseTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := api.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d > maxTTL {
		return 0, fmt.Errorf("%w: ttl %q is longer than 365 days", errdefs.ErrInvalidArgument, s)
	}
	return d, nil
}
