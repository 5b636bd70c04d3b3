package sandbox

import (
	"context"
	"net"
)

// Backend is what a sandbox runtime must provide. Implementations live under
// internal/backend/…; the supervisor process (internal/supervisor) is the
// only caller, so a backend may assume one supervisor per sandbox and that
// its Instance lives as long as that supervisor.
type Backend interface {
	// Name is the backend's name as users write it ("container").
	Name() string
	// Capabilities reports optional features of this backend.
	Capabilities() Capabilities
	// Start boots the sandbox described by spec and returns once its guest
	// agent accepts connections. On error everything Start acquired is
	// released.
	Start(ctx context.Context, spec *Spec) (Instance, error)
	// Cleanup releases whatever a sandbox may still hold on the host
	// (runtime state, mounts, cgroups) after its supervisor is gone. It is
	// idempotent and safe on a sandbox that never started.
	Cleanup(ctx context.Context, spec *Spec) error
}

// Instance is one running sandbox, owned by the supervisor that started it.
type Instance interface {
	// DialAgent opens a byte stream to the guest agent.
	DialAgent(ctx context.Context) (net.Conn, error)
	// Exited is closed when the sandbox's init process has exited.
	Exited() <-chan struct{}
	// ExitError says why the sandbox exited (nil for a clean exit); valid
	// after Exited is closed.
	ExitError() error
	// Stop kills what is left of the sandbox and releases its resources.
	// The caller asks the agent to shut down gracefully first. Idempotent.
	Stop(ctx context.Context) error
}

// Capabilities are optional features a backend may support.
type Capabilities struct {
	Pause      bool `json:"pause"`
	Checkpoint bool `json:"checkpoint"`
	// Isolation names the boundary ("container", "gvisor", "microvm").
	Isolation string `json:"isolation"`
}

// Spec is everything a backend needs to run one sandbox. The daemon writes it
// once, before the supervisor starts, to spec.json in the sandbox's state
// directory; nothing edits it afterwards.
type Spec struct {
	// ID is the sandbox's UUID; Name is the user's name for it.
	ID   string `json:"id"`
	Name string `json:"name"`
	// Backend names the backend that runs the sandbox ("container").
	Backend string `json:"backend"`
	// StateDir is the sandbox's private directory on the host (0700). The
	// backend keeps its bundle, writable layers and sockets here.
	StateDir string `json:"state_dir"`
	// AgentPath is the host path of the static guest agent binary.
	AgentPath string `json:"agent_path"`

	Rootfs RootfsSpec `json:"rootfs"`
	// Process defaults for every exec: the image's Env, WorkingDir, User.
	Env     []string `json:"env,omitempty"`
	Workdir string   `json:"workdir,omitempty"`
	User    string   `json:"user,omitempty"`
	// Hostname inside the sandbox; the sandbox name by default.
	Hostname string `json:"hostname,omitempty"`

	Resources Resources `json:"resources"`
	Security  Security  `json:"security"`
	Mounts    []Mount   `json:"mounts,omitempty"`
}

// RootfsSpec says what the sandbox's root filesystem is made of.
type RootfsSpec struct {
	// Host: the read-only host view (/usr, /bin, /sbin, /lib*, a scrubbed
	// /etc) with fresh writable /tmp, /root and /home.
	Host bool `json:"host,omitempty"`
	// Layers are read-only unpacked layer directories, lowest first; the
	// sandbox gets its own copy-on-write layer above them.
	Layers []string `json:"layers,omitempty"`
}

// Resources are the sandbox's limits. Zero means the documented default.
type Resources struct {
	MemoryMB  int `json:"memory_mb,omitempty"`  // default 512
	VCPUs     int `json:"vcpus,omitempty"`      // default 1
	PidsLimit int `json:"pids_limit,omitempty"` // default 1024
}

// Security is the resolved security profile: every field is enforced or the
// sandbox does not start.
type Security struct {
	Profile string `json:"profile"`
	// Network: "none" (no interface at all) or "loopback" (own namespace
	// with lo only). The gateway adds "gateway" later.
	Network string `json:"network"`
	// ReadOnlyRoot makes the root filesystem read-only (writable /tmp stays).
	ReadOnlyRoot bool `json:"read_only_root,omitempty"`
	// Seccomp names the syscall filter: "default" (Docker's default
	// allowlist), or "strict" (default minus ptrace and friends).
	Seccomp string `json:"seccomp"`
	// Capabilities kept for root in the sandbox; nil means the default set.
	Capabilities []string `json:"capabilities,omitempty"`
}

// Mount is a host directory made visible in the sandbox.
type Mount struct {
	HostPath string `json:"host_path"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
}
