package microvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/backend/microvm/initramfs"
	"github.com/agentkernel/agentkernel/internal/backend/microvm/kernel"
	"github.com/agentkernel/agentkernel/internal/guestinit"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Defaults for the zero values of Options.
const (
	DefaultQEMU     = "qemu-system-x86_64"
	DefaultCacheDir = "/var/cache/agentkernel"
	// DefaultStartTimeout bounds the boot, from QEMU's start to the
	// agent's hello. Under TCG a boot takes ~3 s on an idle host, longer
	// when several boot at once.
	DefaultStartTimeout = 60 * time.Second
	defaultMemoryMB     = 512
	defaultVCPUs        = 1
	// minMemoryMB is the least a guest boots with.
	minMemoryMB = 128
	// teardownTimeout bounds Cleanup.
	teardownTimeout = 15 * time.Second
	// maxConsoleLog is the size at which console.log moves to
	// console.log.1; maxQEMULog the same for qemu.log.
	maxConsoleLog = 4 << 20
	maxQEMULog    = 1 << 20
	// VMFile is the file in StateDir describing the running VM (the daemon
	// reads its accelerator for `sandbox info`).
	VMFile = backend.RuntimeFile
)

// Options configure a Backend. Zero values take the documented defaults;
// the struct must not change after New.
type Options struct {
	// QEMU is the qemu-system-x86_64 binary, a path or a name in PATH.
	QEMU string
	// KernelDir holds the guest kernel installed by `agentkernel setup`
	// (paths.Layout's kernel directory). Required.
	KernelDir string
	// CacheDir holds machine-wide caches (the host image's usr disk,
	// downloaded kernels); default /var/cache/agentkernel.
	CacheDir string
	// Images provides the host view and imported images' layers.
	Images *image.Store
	// IDMap is the range the image store shifted imported images' owners
	// into (the container backend's mapping); default 100000:65536. Their
	// disks shift owners back, so root in the VM owns the image's files.
	IDMap oci.IDMap
	// Accel forces "kvm" or "tcg"; "" probes (see ProbeAccel).
	Accel string
	// WritableMB is the size of the writable disk (sparse) of a sandbox
	// whose spec has no Resources.DiskMB (made before disks had a size);
	// default 4096. Otherwise the spec's DiskMB is its size: the guest's
	// writes past it fail with ENOSPC inside the VM.
	WritableMB int
	// StartTimeout bounds the boot; default 60s.
	StartTimeout time.Duration
	// Debug boots with kernel messages and the agent's debug log on the
	// console.
	Debug  bool
	Logger *slog.Logger
}

// Backend runs each sandbox as a QEMU microvm with its own kernel. It is
// safe for concurrent use and holds no per-sandbox state.
type Backend struct {
	opts Options
	log  *slog.Logger

	// accelMu guards accel, probed once per process.
	accelMu sync.Mutex
	accel   *AccelInfo
}

var _ backend.Backend = (*Backend)(nil)

// New returns a Backend; it checks nothing until Start or Probe.
func New(opts Options) *Backend {
	if opts.QEMU == "" {
		opts.QEMU = DefaultQEMU
	}
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultCacheDir
	}
	if opts.WritableMB <= 0 {
		opts.WritableMB = 4096
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{opts: opts, log: log}
}

// Name returns "microvm".
func (b *Backend) Name() string { return "microvm" }

// Capabilities: the boundary is a VM, attached to the network gateway by
// virtio-net over QEMU's -netdev stream; pause and checkpoint are not done.
func (b *Backend) Capabilities() backend.Capabilities {
	return backend.Capabilities{Isolation: "microvm", NetworkGateway: true, Pause: true}
}

// Kernel returns the installed guest kernel (an error naming `agentkernel
// setup` if there is none).
func (b *Backend) Kernel() (*kernel.Kernel, error) {
	if b.opts.KernelDir == "" {
		return nil, fmt.Errorf("%w: no kernel directory configured", kernel.ErrNotInstalled)
	}
	return kernel.Load(b.opts.KernelDir)
}

// Accel returns the accelerator for k, probing once per process (and
// caching the result in CacheDir across processes).
func (b *Backend) Accel(ctx context.Context, qemu string, k *kernel.Kernel) AccelInfo {
	b.accelMu.Lock()
	defer b.accelMu.Unlock()
	if b.accel != nil && b.accel.Key == probeKey(qemu, k) {
		return *b.accel
	}
	os.MkdirAll(b.opts.CacheDir, 0o755)
	ai := cachedAccel(ctx, filepath.Join(b.opts.CacheDir, "accel.json"), qemu, k, b.opts.Accel)
	if ai.Accel == AccelTCG {
		b.log.Warn("microVMs run under TCG software emulation: slow, not hardware speed", "detail", ai.Detail)
	}
	b.accel = &ai
	return ai
}

// VMInfo is what runtime.json says about a running VM.
type VMInfo struct {
	Accelerator string `json:"accelerator"`
	AccelDetail string `json:"accel_detail"`
	PID         int    `json:"pid"`
	Kernel      string `json:"kernel"`
	VCPUs       int    `json:"vcpus"`
	MemoryMB    int    `json:"memory_mb"`
}

// ReadVMInfo reads runtime.json from a sandbox's state directory.
func ReadVMInfo(stateDir string) (*VMInfo, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, VMFile))
	if err != nil {
		return nil, err
	}
	var vi VMInfo
	if err := json.Unmarshal(b, &vi); err != nil {
		return nil, err
	}
	return &vi, nil
}

// Start boots the sandbox's VM and returns once its agent answers. On
// error everything it started is stopped; the writable disk stays.
func (b *Backend) Start(ctx context.Context, spec *backend.Spec) (_ backend.Instance, retErr error) {
	t0 := time.Now()
	if err := validate(spec); err != nil {
		return nil, err
	}
	vcpus, memMB, err := resources(spec.Resources)
	if err != nil {
		return nil, err
	}
	k, err := b.Kernel()
	if err != nil {
		return nil, err
	}
	qemu, err := exec.LookPath(b.opts.QEMU)
	if err != nil {
		return nil, fmt.Errorf("%w: %s not found (apt-get install qemu-system-x86, or run scripts/setup.sh): %v", errdefs.ErrFailedPrecondition, b.opts.QEMU, err)
	}
	if b.opts.Images == nil {
		return nil, fmt.Errorf("%w: the host image needs Options.Images", errdefs.ErrFailedPrecondition)
	}
	s := *spec
	l := layoutOf(s.StateDir)
	if pid := livePID(l.pidFile, s.ID); pid > 0 {
		return nil, fmt.Errorf("%w: sandbox %s already has a VM (pid %d); stop it or run Cleanup first", errdefs.ErrAlreadyExists, s.ID, pid)
	}
	accel := b.Accel(ctx, qemu, k)

	lowers, err := b.lowerDisks(ctx, &s)
	if err != nil {
		return nil, err
	}
	sizeMB := b.opts.WritableMB
	if s.Resources.DiskMB > 0 {
		sizeMB = s.Resources.DiskMB
	}
	if err := writableDisk(ctx, l.writable, sizeMB); err != nil {
		return nil, fmt.Errorf("creating the writable disk: %w", err)
	}
	cfg := guestinit.Config{Hostname: hostnameOf(&s), Env: s.Env, Network: s.Security.Network,
		ReadOnlyRoot: s.Security.ReadOnlyRoot, Debug: b.opts.Debug}
	var disks []disk
	for _, d := range lowers {
		cfg.Lowers = append(cfg.Lowers, d.serial)
		disks = append(disks, d)
	}
	if s.Rootfs.Host {
		cfg.ReadOnly = []string{"/usr"} // as on the container backend
	}
	for i, m := range s.Mounts {
		p := filepath.Join(s.StateDir, fmt.Sprintf("dir-%d.ext4", i))
		if err := dirDisk(ctx, p, m.HostPath); err != nil {
			return nil, fmt.Errorf("copying %s in: %w", m.HostPath, err)
		}
		serial := fmt.Sprintf("akdir%d", i)
		disks = append(disks, disk{path: p, serial: serial, readOnly: true})
		cfg.Dirs = append(cfg.Dirs, guestinit.DirMount{Serial: serial, Path: m.Path})
	}
	for i, v := range s.Volumes {
		serial := fmt.Sprintf("akvol%d", i)
		disks = append(disks, disk{path: v.Disk, serial: serial, readOnly: v.ReadOnly})
		cfg.Dirs = append(cfg.Dirs, guestinit.DirMount{Serial: serial, Path: v.Path, Writable: !v.ReadOnly})
	}
	var att *backend.NetworkAttachment
	if s.Security.Network == "gateway" {
		att = s.Gateway.Attach
		cfg.Net = netConfig(att)
	}
	if cfg.Network == "" {
		cfg.Network = "none"
	}
	cj, _ := json.Marshal(cfg)
	if err := initramfs.Build(l.initrd, s.AgentPath, k.ModulePaths(), map[string][]byte{strings.TrimPrefix(guestinit.ConfigPath, "/"): cj}); err != nil {
		return nil, fmt.Errorf("building the initramfs: %w", err)
	}
	// A read-only root has the writable disk too, for the mount points the
	// boot creates; the guest makes the root read-only afterwards.
	disks = append(disks, disk{path: l.writable, serial: guestinit.RWSerial})
	vm := &vmConfig{qemu: qemu, name: "ak-" + s.ID, accel: accel.Accel, vcpus: vcpus, memMB: memMB,
		kernel: k.Vmlinux, initrd: l.initrd, cmdline: kernelCmdline(b.opts.Debug, accel.Accel),
		disks: disks, paused: true}
	if att != nil {
		vm.netMAC = cfg.Net.MAC
	}
	t1 := time.Now()
	in, err := b.launch(ctx, &s, l, vm, accel, att)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			in.Stop(context.WithoutCancel(ctx))
		}
	}()
	if err := in.waitAgent(ctx, b.opts.StartTimeout); err != nil {
		return nil, err
	}
	vi, _ := json.Marshal(VMInfo{Accelerator: accel.Accel, AccelDetail: accel.Detail, PID: in.cmd.Process.Pid,
		Kernel: k.Manifest.Package + " " + k.Manifest.Version, VCPUs: vcpus, MemoryMB: memMB})
	if err := os.WriteFile(l.vmFile, vi, 0o600); err != nil {
		return nil, err
	}
	b.log.Info("microVM started", "accel", accel.Accel, "prepare", t1.Sub(t0), "boot", time.Since(t1))
	return in, nil
}

// lowerDisks returns the read-only disks the sandbox's root is stacked
// from, top first, building what is missing.
func (b *Backend) lowerDisks(ctx context.Context, s *backend.Spec) ([]disk, error) {
	if !s.Rootfs.Host {
		img, err := imageDisk(ctx, b.opts.Images.Root(), s.Rootfs.Layers, b.opts.IDMap)
		if err != nil {
			return nil, fmt.Errorf("building the image's disk: %w", err)
		}
		return []disk{{path: img, serial: "akimg", readOnly: true}}, nil
	}
	hv, err := b.opts.Images.HostView(ctx)
	if err != nil {
		return nil, fmt.Errorf("host view: %w", err)
	}
	usr, stale, err := hostUsrDisk(ctx, b.opts.CacheDir, hv, true)
	if err != nil {
		return nil, fmt.Errorf("building the host image's disk (`agentkernel setup` builds it ahead): %w", err)
	}
	if stale {
		b.log.Warn("the host image's disk predates changes to the host's /usr; run `agentkernel setup` to rebuild it", "disk", usr)
	}
	etc, err := etcDisk(ctx, b.opts.Images.Root(), hv.Etc)
	if err != nil {
		return nil, fmt.Errorf("building the /etc disk: %w", err)
	}
	return []disk{{path: etc, serial: "aketc", readOnly: true}, {path: usr, serial: "akusr", readOnly: true}}, nil
}

// launch starts QEMU paused, connects QMP and the agent port, and lets the
// VM run.
func (b *Backend) launch(ctx context.Context, s *backend.Spec, l layout, vm *vmConfig, accel AccelInfo, att *backend.NetworkAttachment) (_ *instance, retErr error) {
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			c.Close()
		}
	}
	pair := func(name string) (host, vm *os.File, err error) {
		if host, vm, err = socketPair(name); err == nil {
			closers = append(closers, host, vm)
		}
		return host, vm, err
	}
	qHost, qVM, err := pair("qmp")
	if err != nil {
		return nil, err
	}
	pHost, pVM, err := pair("agent-port")
	if err != nil {
		closeAll()
		return nil, err
	}
	cHost, cVM, err := pair("console")
	if err != nil {
		closeAll()
		return nil, err
	}
	var nHost, nVM *os.File
	if att != nil {
		if nHost, nVM, err = pair("net"); err != nil {
			closeAll()
			return nil, err
		}
	}
	qlog, err := openCapped(l.qemuLog, maxQEMULog)
	if err != nil {
		closeAll()
		return nil, err
	}
	console, err := openCapped(l.console, maxConsoleLog)
	if err != nil {
		qlog.Close()
		closeAll()
		return nil, err
	}
	cmd := vm.command(qVM, pVM, cVM, nVM, qlog)
	err = cmd.Start()
	// QEMU has its ends now; ours must go, so that its exit reads as EOF.
	qVM.Close()
	pVM.Close()
	cVM.Close()
	if nVM != nil {
		nVM.Close()
	}
	if err != nil {
		console.Close()
		qlog.Close()
		closeAll()
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	os.WriteFile(l.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	consoleDone := make(chan struct{})
	go copyConsole(cHost, console, consoleDone)
	kill := func() {
		cmd.Process.Kill()
		cmd.Wait()
		qlog.Close()
		<-consoleDone
	}
	if att != nil {
		nc, err := net.FileConn(nHost)
		nHost.Close()
		if err == nil {
			err = att.AttachStream(nc) // the gateway owns nc from here
		}
		if err != nil {
			qHost.Close()
			pHost.Close()
			kill()
			return nil, fmt.Errorf("attaching the network gateway: %w", err)
		}
	}
	qc, err := net.FileConn(qHost)
	qHost.Close()
	if err != nil {
		pHost.Close()
		kill()
		return nil, err
	}
	pc, err := net.FileConn(pHost)
	pHost.Close()
	if err != nil {
		qc.Close()
		kill()
		return nil, err
	}
	in := &instance{b: b, spec: *s, l: l, accel: accel, cmd: cmd, qlog: qlog, consoleDone: consoleDone,
		exited: make(chan struct{}), portOpen: make(chan struct{})}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	in.qmp, err = newQMP(qctx, qc)
	if err == nil {
		in.sess, err = yamux.Client(pc, guestinit.OuterConfig())
	}
	if err != nil {
		if in.qmp != nil {
			in.qmp.Close()
		}
		pc.Close()
		kill()
		return nil, fmt.Errorf("%w: qemu did not start the VM (%v): %s", errdefs.ErrFailedPrecondition, err, tailFile(l.qemuLog, 1<<10))
	}
	in.watch()
	if _, err := in.qmp.run(qctx, "cont", nil); err != nil {
		in.Stop(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("starting the VM: %w: %s", err, tailFile(l.qemuLog, 1<<10))
	}
	return in, nil
}

// guestMAC is the VM's address on its link to the gateway (locally
// administered); guestMACAlt if the gateway happens to use it.
const (
	guestMAC    = "02:61:6b:00:00:02"
	guestMACAlt = "02:61:6b:00:00:03"
)

// netConfig is the guest's side of the gateway link.
func netConfig(att *backend.NetworkAttachment) *guestinit.NetConfig {
	mac := guestMAC
	if att.Link.GatewayMAC.String() == mac {
		mac = guestMACAlt
	}
	return &guestinit.NetConfig{MAC: mac, Addr: att.Link.SandboxAddr.String(), PrefixLen: att.Link.PrefixLen,
		Gateway: att.Link.GatewayAddr.String(), MTU: int(att.Link.MTU),
		FilesDir: backend.NetFilesDir, ResolvConf: backend.ResolvConfFile,
		CACertFile: backend.CACertFile, CACert: att.CACert,
		BundleFile: backend.CABundleFile, BundlePaths: backend.CABundlePaths}
}

// socketPair returns two connected stream sockets as files.
func socketPair(name string) (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), name+"-host"), os.NewFile(uintptr(fds[1]), name+"-vm"), nil
}

// livePID returns the pid in pidFile if that process is this sandbox's
// QEMU (its command line names ak-<id>), else 0.
func livePID(pidFile, id string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	cl, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(cl), "ak-"+id+",") {
		return 0
	}
	return pid
}

// release removes the per-start files (the writable disk stays).
func (b *Backend) release(l layout) error {
	var errs []error
	for _, p := range []string{l.pidFile, l.initrd, l.vmFile} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Cleanup kills a VM left by a dead supervisor and removes the per-start
// files. Idempotent; fine on a sandbox that never started.
func (b *Backend) Cleanup(ctx context.Context, spec *backend.Spec) error {
	if spec == nil {
		return fmt.Errorf("%w: nil spec", errdefs.ErrInvalidArgument)
	}
	if err := oci.ValidateID(spec.ID); err != nil {
		return err
	}
	if !filepath.IsAbs(spec.StateDir) || filepath.Clean(spec.StateDir) != spec.StateDir {
		return fmt.Errorf("%w: state directory %q must be an absolute, clean path", errdefs.ErrInvalidArgument, spec.StateDir)
	}
	l := layoutOf(spec.StateDir)
	if pid := livePID(l.pidFile, spec.ID); pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
		deadline := time.Now().Add(teardownTimeout)
		for livePID(l.pidFile, spec.ID) > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("%w: qemu %d of sandbox %s survives SIGKILL", errdefs.ErrDeadlineExceeded, pid, spec.ID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return b.release(l)
}
