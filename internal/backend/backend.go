// Package backend is the contract between agentkernel and the runtimes that
// run sandboxes (internal/backend/container, internal/backend/microvm, …):
// the Spec a sandbox is started from, the Backend that starts it and the
// Instance it becomes. It is a leaf: it imports nothing of agentkernel above
// it (a dependency test enforces that), so a backend depends on this
// contract and not on the orchestrator, the store or the HTTP API.
package backend

import (
	"context"
	"net"
	"net/netip"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
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

// Destroyer is implemented by a backend that keeps a sandbox's files
// outside its state directory across stops (the kubernetes backend's
// PersistentVolumeClaim). The daemon calls Destroy once the sandbox is
// removed, after Cleanup; it releases what only removal may release and
// is idempotent.
type Destroyer interface {
	Destroy(ctx context.Context, spec *Spec) error
}

// Pauser is implemented by an Instance whose backend reports
// Capabilities.Pause: Pause freezes every process of the sandbox where it
// is (they keep their memory and files and use no CPU), Resume lets them
// go on. Both are idempotent.
type Pauser interface {
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
}

// Checkpointer is implemented by an Instance whose backend reports
// Capabilities.Checkpoint: Checkpoint writes the sandbox's memory and
// process state into dir (an existing empty directory) so that a new
// sandbox can be started from it (Spec.Restore), and leaves the sandbox
// paused: its files are then as they were at the checkpoint until Resume
// (the caller captures them meanwhile). Connections to the guest agent
// open at the time end.
type Checkpointer interface {
	Checkpoint(ctx context.Context, dir string) error
}

// HostnameSetter is implemented by an Instance whose host name the host
// side can change while it runs (a container's UTS namespace, entered from
// the supervisor, since root in a container lacks CAP_SYS_ADMIN). A claim
// of a warm-pool sandbox names it this way; without it the supervisor asks
// the guest agent (agentproto.Configure).
type HostnameSetter interface {
	SetHostname(ctx context.Context, name string) error
}

// PlatformReporter is implemented by a backend that runs on one of several
// host mechanisms chosen at run time (gvisor: the Sentry's platform,
// "systrap" or "ptrace"). Platform returns "" when it cannot tell (the
// runtime is missing).
type PlatformReporter interface {
	Platform(ctx context.Context) string
}

// ResourceUpdater is implemented by an Instance whose limits can change
// while it runs (a container's cgroup). A claim of a warm-pool sandbox
// gives it its caller's limits this way.
type ResourceUpdater interface {
	UpdateResources(ctx context.Context, r Resources) error
}

// ChangesReader is implemented by a backend whose sandboxes keep their
// filesystem changes as a copy-on-write layer over read-only image layers,
// so that commit and export can read them without knowing its layout.
type ChangesReader interface {
	// Changes returns where spec's sandbox keeps its changes. It is valid
	// while the sandbox exists, running (a live view) or stopped; a
	// sandbox with no such layer (the host image) is an error classed
	// errdefs.ErrFailedPrecondition.
	Changes(spec *Spec) (Changes, error)
}

// Changes is a sandbox's copy-on-write layer in overlayfs form: deletions
// as whiteouts (0/0 character devices), replaced directories marked opaque
// (trusted.overlay.opaque), over Layers, the spec's image layers, lowest
// first.
type Changes struct {
	UpperDir string
	Layers   []string
}

// Capabilities are optional features a backend may support.
type Capabilities struct {
	Pause bool `json:"pause"`
	// Checkpoint says the backend takes memory snapshots: its Instance
	// is a Checkpointer and Start honours Spec.Restore.
	Checkpoint bool `json:"checkpoint"`
	// Isolation names the boundary ("container", "gvisor", "microvm").
	Isolation string `json:"isolation"`
	// NetworkGateway says Start attaches Spec.Gateway (see
	// NetworkAttachment). Without it the daemon gives the backend's
	// sandboxes no network beyond loopback, and refuses requests that
	// need one.
	NetworkGateway bool `json:"network_gateway"`
	// Resize says a running sandbox's memory and CPU limits can change in
	// place (its Instance is a ResourceUpdater): a warm pool's sandbox
	// then serves requests of any size.
	Resize bool `json:"resize"`
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
	// Cmd is the image's Entrypoint followed by its Cmd, run when a
	// request names no command.
	Cmd []string `json:"cmd,omitempty"`
	// Hostname inside the sandbox; the sandbox name by default.
	Hostname string `json:"hostname,omitempty"`

	Resources Resources `json:"resources"`
	Security  Security  `json:"security"`
	Mounts    []Mount   `json:"mounts,omitempty"`
	// Volumes are named volumes (internal/volume): ext4 images the daemon
	// keeps, each used by one sandbox read-write or by several read-only.
	Volumes []VolumeMount `json:"volumes,omitempty"`
	// Gateway configures the sandbox's network gateway; set exactly when
	// Security.Network is "gateway".
	Gateway *GatewaySpec `json:"gateway,omitempty"`
	// Restore, on a backend with Capabilities.Checkpoint, makes the first
	// Start continue the processes of a checkpoint instead of booting
	// afresh; the spec must then be the checkpointed sandbox's but for its
	// identity (ID, Name, StateDir, Hostname, Gateway). Later Starts boot
	// afresh (processes restart), as for any stopped sandbox.
	Restore *RestoreSpec `json:"restore,omitempty"`
}

// RestoreSpec names a checkpoint (see Checkpointer).
type RestoreSpec struct {
	// ImageDir is the directory Checkpoint wrote. It must stay until
	// Start has returned.
	ImageDir string `json:"image_dir"`
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
	// DiskMB is the size of the sandbox's writable disk, which holds
	// everything it writes (its upper layer, /root, /home, /tmp): writes
	// past it fail with ENOSPC. Zero only in specs made before disks had
	// a size (the container backend then keeps their files unlimited).
	DiskMB int `json:"disk_mb,omitempty"`
}

// Security is the resolved security profile: every field is enforced or the
// sandbox does not start.
type Security struct {
	Profile string `json:"profile"`
	// Network: "none" or "loopback" (own network namespace or VM with lo
	// only; both mean no way out), or "gateway" (lo and one interface
	// whose only peer is the sandbox's network gateway; see Spec.Gateway).
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

// VolumeMount is a named volume's disk image mounted at Path. The microvm
// backend attaches Disk as a drive (read-only when ReadOnly) that the guest
// mounts; the daemon checks that no other sandbox writes the image
// meanwhile.
type VolumeMount struct {
	Name     string `json:"name"`
	Disk     string `json:"disk"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Shared is a read-write use beside other sandboxes' shared or
	// read-only uses; only backends that mount the image on the host
	// (container, gvisor) share one filesystem instance. The daemon
	// decides who may; backends read it only to refuse what they cannot.
	Shared bool `json:"shared,omitempty"`
}

// GatewaySpec is the network gateway's configuration, resolved by the
// daemon. The supervisor builds the gateway from it (package supervisor)
// before Backend.Start and hands the backend the Attach point.
type GatewaySpec struct {
	// Policy is the egress policy the sandbox starts with. A later change
	// (PUT /sandboxes/{name}/network) is kept beside the spec, in
	// supervisor.PolicyFile, by the daemon.
	Policy policy.Policy `json:"policy"`
	// Secrets are the sandbox's secret bindings, by name: the values stay
	// in the daemon's vault and reach the supervisor over a pipe.
	Secrets []SecretRef `json:"secrets,omitempty"`
	// Publish lists loopback ports of the host forwarded to the sandbox.
	Publish []PortMapping `json:"publish,omitempty"`
	// InterceptionCA gives the gateway an interception CA, which the
	// sandbox trusts, even with no secret bound: a warm-pool sandbox
	// starts this way so that its claim can bind secrets.
	InterceptionCA bool `json:"interception_ca,omitempty"`

	// Attach is set by the supervisor for Backend.Start and never
	// stored.
	Attach *NetworkAttachment `json:"-"`
}

// SecretRef binds the vault entry VaultName to Host. The sandbox's variable
// Name holds a placeholder; the gateway adds the value, in Header, to HTTPS
// requests to Host.
type SecretRef struct {
	Name      string `json:"name"`
	VaultName string `json:"vault_name"`
	Host      string `json:"host"`
	Header    string `json:"header"`
}

// PortMapping publishes SandboxPort on 127.0.0.1:HostPort of the host
// (HostPort 0: a free port, chosen at each start).
type PortMapping struct {
	HostPort    uint16 `json:"host_port"`
	SandboxPort uint16 `json:"sandbox_port"`
}

// Paths inside a sandbox with a gateway. The backend makes NetFilesDir
// hold the files below (read-only), binds ResolvConfFile's content over
// /etc/resolv.conf and, when the sandbox has a CA, CABundleFile's over the
// image's system CA bundles. Spec.Env names them (SSL_CERT_FILE,
// REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS) when secrets are bound.
const (
	NetFilesDir    = "/.agentkernel/net"
	ResolvConfFile = NetFilesDir + "/resolv.conf"
	// CACertFile is the sandbox's interception CA alone; CABundleFile is
	// the image's CA bundle with the sandbox's CA appended.
	CACertFile   = NetFilesDir + "/ca.pem"
	CABundleFile = NetFilesDir + "/ca-bundle.pem"
)

// CABundlePaths are where images keep their system CA bundle; the backend
// covers each one the image has with CABundleFile's content.
var CABundlePaths = []string{
	"/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine, Arch
	"/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
	"/etc/ssl/ca-bundle.pem",             // openSUSE
	"/etc/ssl/cert.pem",                  // Alpine, macOS-style
}

// NetworkAttachment is how a backend connects its sandbox to the gateway
// the supervisor runs for it. The supervisor creates it and passes it in
// Spec.Gateway.Attach; a backend whose Capabilities say NetworkGateway
// must use exactly one of Netns (a kernel network namespace: container,
// gVisor) and AttachStream (a VM's virtio-net over QEMU's -netdev stream)
// during Start, or Start fails.
//
// The sandbox side must be configured from Link: one interface with
// SandboxAddr/PrefixLen and MTU, a default route via GatewayAddr, and
// "nameserver GatewayAddr" in /etc/resolv.conf. IPv6 is not served.
type NetworkAttachment struct {
	Link Link
	// Netns returns the path of a network namespace prepared for the
	// sandbox (lo up, a tap named eth0 configured from Link, default
	// route), owned by the host's user namespace so that root in the
	// sandbox cannot reconfigure it. It stays valid while the supervisor
	// runs; a second call returns the same path.
	Netns func(ctx context.Context) (string, error)
	// AttachStream connects the gateway to the host end of a VM's
	// "-netdev stream" connection: ethernet frames each preceded by a
	// 4-byte big-endian length. The gateway owns conn from then on, even
	// on error. Call it at most once.
	AttachStream func(conn net.Conn) error
	// CACert is the PEM certificate of the sandbox's interception CA, to
	// be trusted inside the sandbox (see CACertFile); nil when no secret
	// is bound.
	CACert []byte
}

// Link is the sandbox's side of its link to the gateway.
type Link struct {
	SandboxAddr netip.Addr
	GatewayAddr netip.Addr
	PrefixLen   int
	MTU         uint32
	// GatewayMAC is the gateway's ethernet address; a VM's interface
	// needs another one (e.g. 02:61:6b:00:00:02).
	GatewayMAC net.HardwareAddr
}
