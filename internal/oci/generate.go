package oci

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Defaults for the zero values of Config and backend.Resources.
const (
	DefaultHostID       = 100000
	DefaultIDMapSize    = 65536
	DefaultCgroupParent = "/agentkernel"
	DefaultMemoryMB     = 512
	DefaultVCPUs        = 1
	DefaultPidsLimit    = 1024
	DefaultNoFile       = 1 << 20
	cpuPeriod           = 100000
)

// Bounds on backend.Resources.
const (
	minMemoryMB  = 32
	maxMemoryMB  = 1 << 20 // 1 TiB
	maxVCPUs     = 1024
	minPidsLimit = 32
	maxPidsLimit = 1 << 22
	maxEnv       = 1024
	maxEnvBytes  = 256 << 10
	defaultPath  = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// IDMap is the host range that the sandbox's uids and gids 0..Size-1 map to.
// Zero fields take DefaultHostID and DefaultIDMapSize.
type IDMap struct {
	HostUID uint32
	HostGID uint32
	Size    uint32
}

// WithDefaults returns m with zero fields replaced by the defaults.
func (m IDMap) WithDefaults() IDMap {
	if m.HostUID == 0 {
		m.HostUID = DefaultHostID
	}
	if m.HostGID == 0 {
		m.HostGID = DefaultHostID
	}
	if m.Size == 0 {
		m.Size = DefaultIDMapSize
	}
	return m
}

// Config is what Generate needs beyond the backend.Spec: host paths the
// backend prepared, and host-wide settings. Zero values take the documented
// defaults.
type Config struct {
	// Rootfs is the host path of the prepared root filesystem. Required.
	Rootfs string
	// AgentRunDir is the host directory bind-mounted at AgentRunDir, owned
	// by the mapped root. Required.
	AgentRunDir string
	// IDMap is the host range root in the sandbox maps to.
	IDMap IDMap
	// CgroupParent is the cgroup under which each sandbox gets
	// <CgroupParent>/<id>; default DefaultCgroupParent.
	CgroupParent string
	// ImageMounts come from the image (the host view's read-only binds,
	// persistent /root and /home); they are mounted after the system mounts
	// and before Spec.Mounts.
	ImageMounts []specs.Mount
	// TmpDir, when set, is the host directory bound at /tmp (empty, mode
	// 1777, owned by the mapped root; the backend makes it afresh at each
	// start). It keeps /tmp on disk: a tmpfs's pages count against the
	// sandbox's memory limit and cannot be reclaimed, so filling it would
	// starve (or get OOM-killed) everything in the sandbox. Empty means a
	// tmpfs of at most a quarter of the memory limit.
	TmpDir string
	// Network is required in network mode "gateway" and ignored in the
	// others.
	Network *Network
	// NoFile is RLIMIT_NOFILE (soft and hard). Zero means DefaultNoFile,
	// lowered to the calling process's hard limit, which a process in a
	// user namespace cannot raise.
	NoFile uint64
}

var (
	hostnameRE = backend.HostnameRE
	envKeyRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)
)

// ValidateID checks that id is usable as a runc container id and a cgroup
// and path name (see backend.ValidateID).
func ValidateID(id string) error { return backend.ValidateID(id) }

// CgroupsPath returns the cgroup of sandbox id under parent ("" means the
// default parent).
func CgroupsPath(parent, id string) string {
	if parent == "" {
		parent = DefaultCgroupParent
	}
	return filepath.Join(parent, id)
}

// Generate builds the runtime spec for s. It validates s; errors are
// ErrInvalidArgument and name the offending field.
func Generate(s *backend.Spec, c Config) (*specs.Spec, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil spec", errdefs.ErrInvalidArgument)
	}
	if err := ValidateID(s.ID); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(c.Rootfs) || !filepath.IsAbs(c.AgentRunDir) {
		return nil, fmt.Errorf("%w: rootfs and agent run directory must be absolute paths", errdefs.ErrInvalidArgument)
	}
	if !filepath.IsAbs(s.AgentPath) || filepath.Clean(s.AgentPath) != s.AgentPath {
		return nil, fmt.Errorf("%w: agent path %q must be an absolute, clean path", errdefs.ErrInvalidArgument, s.AgentPath)
	}
	idm := c.IDMap.WithDefaults()
	if uint64(idm.HostUID)+uint64(idm.Size) > 1<<32-1 || uint64(idm.HostGID)+uint64(idm.Size) > 1<<32-1 {
		return nil, fmt.Errorf("%w: id map %+v overflows", errdefs.ErrInvalidArgument, idm)
	}
	if c.CgroupParent != "" && (!filepath.IsAbs(c.CgroupParent) || filepath.Clean(c.CgroupParent) != c.CgroupParent) {
		return nil, fmt.Errorf("%w: cgroup parent %q must be an absolute, clean path", errdefs.ErrInvalidArgument, c.CgroupParent)
	}
	res, err := Resources(s.Resources)
	if err != nil {
		return nil, err
	}
	env, err := environment(s.Env)
	if err != nil {
		return nil, err
	}
	hostname, err := hostnameFor(s)
	if err != nil {
		return nil, err
	}
	netns := specs.LinuxNamespace{Type: specs.NetworkNamespace}
	switch s.Security.Network {
	case "", "none", "loopback":
		// Both get a new network namespace holding only lo.
	case "gateway":
		if c.Network == nil {
			return nil, fmt.Errorf("%w: network mode gateway needs the backend's network attachment", errdefs.ErrInvalidArgument)
		}
		if err := c.Network.validate(); err != nil {
			return nil, err
		}
		netns.Path = c.Network.Netns
	default:
		return nil, fmt.Errorf("%w: unknown network mode %q", errdefs.ErrInvalidArgument, s.Security.Network)
	}
	caps, err := Capabilities(s.Security.Capabilities)
	if err != nil {
		return nil, err
	}
	umounts, err := userMounts(s.Mounts)
	if err != nil {
		return nil, err
	}
	for _, m := range c.ImageMounts {
		if err := checkTarget(m.Destination); err != nil {
			return nil, fmt.Errorf("image mount: %w", err)
		}
	}

	mounts := systemMounts(c.TmpDir, *res.Memory.Limit/4)
	if netns.Path != "" && c.Network.Sysfs != "" {
		mounts = withSysfs(mounts, c.Network.Sysfs)
	}
	mounts = append(mounts,
		BindMount(s.AgentPath, AgentBinary, true),
		BindMount(c.AgentRunDir, AgentRunDir, false),
	)
	mounts = append(mounts, c.ImageMounts...)
	if netns.Path != "" {
		// Before the user's mounts: one over /etc hides these rather
		// than making runc create mount points in a host directory.
		mounts = append(mounts, c.Network.mounts()...)
	}
	mounts = append(mounts, umounts...)

	spec := &specs.Spec{
		Version:  specs.Version,
		Hostname: hostname,
		Root:     &specs.Root{Path: c.Rootfs, Readonly: s.Security.ReadOnlyRoot},
		Mounts:   mounts,
		Process: &specs.Process{
			Terminal: false,
			User:     specs.User{UID: 0, GID: 0},
			Args:     []string{AgentBinary, "--listen", "unix:" + AgentSocket},
			Env:      env,
			Cwd:      "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
				// Inheritable and Ambient stay empty: nothing is
				// passed across exec beyond what the bounding and
				// permitted sets allow root (CVE-2022-24769).
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: noFile(c.NoFile), Soft: noFile(c.NoFile)}},
			NoNewPrivileges: true,
		},
		Linux: &specs.Linux{
			UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: idm.HostUID, Size: idm.Size}},
			GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: idm.HostGID, Size: idm.Size}},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.UserNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.PIDNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.CgroupNamespace},
				netns,
			},
			Resources:     res,
			CgroupsPath:   CgroupsPath(c.CgroupParent, s.ID),
			MaskedPaths:   MaskedPaths(),
			ReadonlyPaths: ReadonlyPaths(),
		},
	}
	sc, err := Seccomp(s.Security.Seccomp, spec)
	if err != nil {
		return nil, err
	}
	spec.Linux.Seccomp = sc
	return spec, nil
}

// resources converts and bounds the sandbox's limits.
// Resources returns the cgroup limits of r (defaults for its zero
// fields), checked against the bounds: what Generate puts in the bundle and
// what a running container is updated to.
func Resources(r backend.Resources) (*specs.LinuxResources, error) {
	mem, cpus, pids := r.MemoryMB, r.VCPUs, r.PidsLimit
	if mem == 0 {
		mem = DefaultMemoryMB
	}
	if cpus == 0 {
		cpus = DefaultVCPUs
	}
	if pids == 0 {
		pids = DefaultPidsLimit
	}
	if mem < minMemoryMB || mem > maxMemoryMB {
		return nil, fmt.Errorf("%w: memory_mb %d out of range [%d, %d]", errdefs.ErrInvalidArgument, r.MemoryMB, minMemoryMB, maxMemoryMB)
	}
	if cpus < 1 || cpus > maxVCPUs {
		return nil, fmt.Errorf("%w: vcpus %d out of range [1, %d]", errdefs.ErrInvalidArgument, r.VCPUs, maxVCPUs)
	}
	if pids < minPidsLimit || pids > maxPidsLimit {
		return nil, fmt.Errorf("%w: pids_limit %d out of range [%d, %d]", errdefs.ErrInvalidArgument, r.PidsLimit, minPidsLimit, maxPidsLimit)
	}
	memBytes := int64(mem) << 20
	// memory+swap equal to memory: no swap at all.
	swap := memBytes
	quota := int64(cpus) * cpuPeriod
	period := uint64(cpuPeriod)
	pidsLimit := int64(pids)
	return &specs.LinuxResources{
		// Deny every device; runc adds allow rules for exactly the
		// default nodes it creates in /dev.
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Memory:  &specs.LinuxMemory{Limit: &memBytes, Swap: &swap},
		CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period},
		Pids:    &specs.LinuxPids{Limit: &pidsLimit},
	}, nil
}

// environment validates Spec.Env and adds a default PATH if it has none.
func environment(in []string) ([]string, error) {
	if len(in) > maxEnv {
		return nil, fmt.Errorf("%w: %d environment variables (at most %d)", errdefs.ErrInvalidArgument, len(in), maxEnv)
	}
	total := 0
	hasPath := false
	seen := map[string]bool{}
	out := make([]string, 0, len(in)+1)
	for _, kv := range in {
		total += len(kv)
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envKeyRE.MatchString(k) || strings.ContainsRune(kv, 0) {
			return nil, fmt.Errorf("%w: environment entry %q is not KEY=VALUE", errdefs.ErrInvalidArgument, truncate(kv, 64))
		}
		if seen[k] {
			return nil, fmt.Errorf("%w: environment variable %s set twice", errdefs.ErrInvalidArgument, k)
		}
		seen[k] = true
		hasPath = hasPath || k == "PATH"
		out = append(out, kv)
	}
	if total > maxEnvBytes {
		return nil, fmt.Errorf("%w: environment is %d bytes (at most %d)", errdefs.ErrInvalidArgument, total, maxEnvBytes)
	}
	if !hasPath {
		out = append(out, defaultPath)
	}
	return out, nil
}

// hostnameFor picks and checks the sandbox's hostname: Spec.Hostname, else
// the sandbox name if it is a valid hostname, else "sandbox".
func hostnameFor(s *backend.Spec) (string, error) {
	if s.Hostname != "" {
		if !hostnameRE.MatchString(s.Hostname) {
			return "", fmt.Errorf("%w: hostname %q is not a valid host name label", errdefs.ErrInvalidArgument, s.Hostname)
		}
		return s.Hostname, nil
	}
	if hostnameRE.MatchString(s.Name) {
		return s.Name, nil
	}
	return "sandbox", nil
}

// noFile returns the RLIMIT_NOFILE value to use.
func noFile(want uint64) uint64 {
	if want == 0 {
		want = DefaultNoFile
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Max < want {
		want = rl.Max
	}
	return want
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
