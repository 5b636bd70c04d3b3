package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Defaults for the zero values of Options.
const (
	DefaultRuntime      = "runc"
	DefaultRootfsDir    = "/run/agentkernel/rootfs"
	DefaultStartTimeout = 10 * time.Second
	// teardownTimeout bounds one teardown (Stop, Cleanup, a failed Start).
	teardownTimeout = 10 * time.Second
	// maxConsoleLog is the size at which console.log is rotated (to
	// console.log.1) when a sandbox starts.
	maxConsoleLog = 4 << 20
)

// Options configure a Backend. Zero values take the documented defaults;
// the struct must not change after New.
type Options struct {
	// Flavor is the runtime family: Runc (default) or GVisor (see
	// gvisor.go for what differs).
	Flavor Flavor
	// Runtime is the OCI runtime binary, a path or a name looked up in
	// PATH; default "runc", and for GVisor the newest runsc in RunscCache,
	// else runsc in PATH.
	Runtime string
	// RunscCache is where scripts/runsc.sh caches runsc builds; default
	// DefaultRunscCache. GVisor only.
	RunscCache string
	// Platform forces gVisor's platform ("systrap", "ptrace", "kvm");
	// empty probes systrap, then ptrace. GVisor only.
	Platform string
	// RuntimeRoot is the runtime's state directory (runc --root), e.g.
	// paths.Layout.RuncRoot(). Required.
	RuntimeRoot string
	// RootfsDir holds each sandbox's root filesystem mount point,
	// <RootfsDir>/<id>; default "/run/agentkernel/rootfs". Every directory
	// on its path must be searchable by others (0711 is enough; a missing
	// one is created so): runc's init walks it as the mapped root.
	RootfsDir string
	// CgroupParent holds every sandbox's cgroup; default "/agentkernel".
	CgroupParent string
	// IDMap is the host range root in a sandbox maps to; default
	// 100000:65536 for uids and gids. Imported images must have been
	// shifted into the same range.
	IDMap oci.IDMap
	// Images provides the host image's view (needed for Rootfs.Host).
	Images *image.Store
	// DiskTemplates caches an empty ext4 image of each disk size that
	// sandboxes' disks are copied from (see makeDisk); empty makes each
	// disk with mkfs.ext4.
	DiskTemplates string
	// StartTimeout bounds the wait for the agent socket; default 10s. The
	// context given to Start may shorten it.
	StartTimeout time.Duration
	// Logger receives debug lines; nil discards them.
	Logger *slog.Logger
}

// Backend runs sandboxes as OCI containers with runc. It is safe for
// concurrent use; it holds no per-sandbox state (each Instance does).
type Backend struct {
	opts Options
	log  *slog.Logger

	// checkMu guards rt, which is set once the host checks passed; a
	// failed check is retried by the next call.
	checkMu sync.Mutex
	rt      *runc
}

var _ backend.Backend = (*Backend)(nil)

// New returns a Backend. It checks nothing yet: the first Start or Cleanup
// verifies the runtime (and Probe reports on the host).
func New(opts Options) *Backend {
	if opts.Runtime == "" && opts.Flavor != GVisor {
		opts.Runtime = DefaultRuntime
	}
	if opts.CgroupParent == "" {
		opts.CgroupParent = oci.DefaultCgroupParent
	}
	if opts.RootfsDir == "" {
		opts.RootfsDir = DefaultRootfsDir
	}
	opts.IDMap = opts.IDMap.WithDefaults()
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{opts: opts, log: log}
}

// Name returns "container", or "gvisor" for the GVisor flavor.
func (b *Backend) Name() string {
	if b.opts.Flavor == GVisor {
		return "gvisor"
	}
	return "container"
}

// Capabilities reports pause (runc pause: the cgroup freezer; runsc pause:
// the Sentry stops its tasks) and no checkpoint yet; sandboxes attach to
// their network gateway through a network namespace. Only runc resizes a
// running sandbox (that runsc update does is not shown).
func (b *Backend) Capabilities() backend.Capabilities {
	if b.opts.Flavor == GVisor {
		return backend.Capabilities{Isolation: "gvisor", NetworkGateway: true, Pause: true, Checkpoint: true}
	}
	return backend.Capabilities{Isolation: "container", NetworkGateway: true, Pause: true, Resize: true}
}

// Platform returns the gVisor platform sandboxes run on, probing it if no
// start has yet ("" for runc, or when runsc is missing).
func (b *Backend) Platform(ctx context.Context) string {
	if b.opts.Flavor != GVisor || b.check(ctx) != nil {
		return ""
	}
	return b.runtime().platform
}

// check verifies, until it once succeeds, that we are root, that the
// runtime exists and filters syscalls, and that the runtime root and rootfs
// directory are usable.
func (b *Backend) check(ctx context.Context) error {
	b.checkMu.Lock()
	defer b.checkMu.Unlock()
	if b.rt != nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: the %s backend needs root", errdefs.ErrFailedPrecondition, b.Name())
	}
	if !filepath.IsAbs(b.opts.RuntimeRoot) {
		return fmt.Errorf("%w: runtime root %q must be an absolute path", errdefs.ErrInvalidArgument, b.opts.RuntimeRoot)
	}
	if !filepath.IsAbs(b.opts.RootfsDir) {
		return fmt.Errorf("%w: rootfs directory %q must be an absolute path", errdefs.ErrInvalidArgument, b.opts.RootfsDir)
	}
	if b.opts.Flavor == GVisor {
		rt, err := b.checkGVisor(ctx)
		if err != nil {
			return err
		}
		if err := ensureTraversable(b.opts.RootfsDir); err != nil {
			return err
		}
		b.rt = rt
		return nil
	}
	path, err := exec.LookPath(b.opts.Runtime)
	if err != nil {
		return fmt.Errorf("%w: OCI runtime %q not found (install runc): %v", errdefs.ErrFailedPrecondition, b.opts.Runtime, err)
	}
	rt := &runc{path: path, root: b.opts.RuntimeRoot}
	v, err := rt.version(ctx)
	if err != nil {
		return err
	}
	if seccompVersion(v) == "" {
		return fmt.Errorf("%w: %s was built without libseccomp, so sandboxes would run without a syscall filter; install a runc built with seccomp",
			errdefs.ErrFailedPrecondition, path)
	}
	if err := os.MkdirAll(b.opts.RuntimeRoot, 0o700); err != nil {
		return fmt.Errorf("creating runtime root: %w", err)
	}
	if err := ensureTraversable(b.opts.RootfsDir); err != nil {
		return err
	}
	b.rt = rt
	return nil
}

// runtime returns the checked runtime (nil before a successful check).
func (b *Backend) runtime() *runc {
	b.checkMu.Lock()
	defer b.checkMu.Unlock()
	return b.rt
}

// validate checks what Start needs from a spec before touching the host:
// the contract's checks are all the container backend needs.
func (b *Backend) validate(s *backend.Spec) error { return s.Validate() }

// Start builds the bundle in spec.StateDir, runs the container detached and
// returns once the agent accepts a connection. On error it releases what it
// acquired (runtime state, mounts, cgroup).
func (b *Backend) Start(ctx context.Context, spec *backend.Spec) (_ backend.Instance, retErr error) {
	t0 := time.Now()
	if err := b.validate(spec); err != nil {
		return nil, err
	}
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	if b.hasRuntimeState(spec.ID) {
		return nil, fmt.Errorf("%w: sandbox %s has runtime state; stop it or run Cleanup first", errdefs.ErrAlreadyExists, spec.ID)
	}
	restoreDir, err := b.restoreFrom(spec)
	if err != nil {
		return nil, err
	}
	s := *spec
	l := b.layout(&s)
	defer func() {
		if retErr != nil {
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
			defer cancel()
			if err := b.teardown(tctx, &s); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("cleaning up: %w", err))
			}
		}
	}()

	if err := os.MkdirAll(l.bundle, 0o700); err != nil {
		return nil, err
	}
	if hasDisk(&s) {
		if err := makeDisk(ctx, l.diskImg, s.Resources.DiskMB, b.opts.DiskTemplates); err != nil {
			return nil, fmt.Errorf("creating the sandbox's disk: %w", err)
		}
		if err := mountDisk(l.diskImg, l.disk); err != nil {
			return nil, err
		}
	}
	vols, err := b.mountVolumes(&s)
	if err != nil {
		return nil, err
	}
	s.Mounts = append(append([]backend.Mount(nil), s.Mounts...), vols...)
	var cfg oci.Config
	etcRoot := ""
	if s.Rootfs.Host {
		if b.opts.Images == nil {
			return nil, fmt.Errorf("%w: the host image needs Options.Images", errdefs.ErrFailedPrecondition)
		}
		hv, err := b.opts.Images.HostView(ctx)
		if err != nil {
			return nil, fmt.Errorf("host view: %w", err)
		}
		if cfg.ImageMounts, err = prepareHostRootfs(l, hv, b.opts.IDMap, s.Security.ReadOnlyRoot, userTargets(&s)); err != nil {
			return nil, fmt.Errorf("preparing the rootfs: %w", err)
		}
		etcRoot = hv.Etc
	} else if err := mountOverlay(l, s.Rootfs.Layers, b.opts.IDMap); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(l.agentRun); err != nil {
		return nil, err
	}
	if err := mkdirOwned(l.agentRun, int(b.opts.IDMap.HostUID), int(b.opts.IDMap.HostGID), 0o700); err != nil {
		return nil, err
	}
	// A fresh, disk-backed /tmp at every start (see oci.Config.TmpDir).
	if err := os.RemoveAll(l.tmp); err != nil {
		return nil, err
	}
	if err := mkdirOwned(l.tmp, int(b.opts.IDMap.HostUID), int(b.opts.IDMap.HostGID), 0o777|os.ModeSticky); err != nil {
		return nil, err
	}
	netCfg, err := b.prepareNetwork(ctx, &s, l, etcRoot)
	if err != nil {
		return nil, err
	}
	cfg.Network = netCfg
	cfg.Rootfs, cfg.AgentRunDir, cfg.TmpDir = l.rootfs, l.agentRun, l.tmp
	cfg.IDMap, cfg.CgroupParent = b.opts.IDMap, b.opts.CgroupParent
	gen, err := oci.Generate(&s, cfg)
	if err != nil {
		return nil, err
	}
	if b.opts.Flavor == GVisor {
		if err := gvisorBundle(gen); err != nil {
			return nil, err
		}
	}
	if err := oci.WriteConfig(l.bundle, gen); err != nil {
		return nil, err
	}
	console, err := openConsole(l.console)
	if err != nil {
		return nil, err
	}
	defer console.Close()
	if err := os.Remove(l.pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	t1 := time.Now()
	var runFlags []string
	if b.opts.Flavor == GVisor {
		runFlags = append(runFlags, gvisorNetwork(s.Security.Network))
	}
	if restoreDir != "" {
		if err := b.runtime().restore(ctx, s.ID, l.bundle, l.pidFile, restoreDir, console, runFlags...); err != nil {
			return nil, fmt.Errorf("restoring sandbox %s from its memory snapshot: %w", s.ID, err)
		}
	} else if err := b.runtime().run(ctx, s.ID, l.bundle, l.pidFile, console, runFlags...); err != nil {
		return nil, fmt.Errorf("starting sandbox %s: %w", s.ID, err)
	}
	t2 := time.Now()
	pid, err := readPid(l.pidFile)
	if err != nil {
		return nil, err
	}
	// Before the agent starts anything: the sandbox's own memory pressure
	// must not kill its agent (see agentproto.AgentOOMScoreAdj). A host
	// without CAP_SYS_RESOURCE (a container itself) may not lower it; the
	// agent's boost of its processes still puts them first.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(strconv.Itoa(agentproto.AgentOOMScoreAdj)), 0); err != nil {
		b.log.Debug("cannot lower the agent's oom_score_adj; relying on its processes' boost", "id", s.ID, "err", err)
	}
	inst, err := newInstance(b, &s, l, pid)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			inst.closeWatch()
		}
	}()
	if restoreDir != "" {
		if err := inst.afterRestore(ctx); err != nil {
			return nil, err
		}
	}
	if err := inst.waitAgent(ctx, b.opts.StartTimeout); err != nil {
		return nil, err
	}
	b.log.Debug("sandbox started", "id", s.ID, "pid", pid,
		"prepare", t1.Sub(t0), "runtime", t2.Sub(t1), "agent", time.Since(t2), "total", time.Since(t0))
	if b.opts.Flavor == GVisor {
		return gvisorInstance{inst}, nil
	}
	return inst, nil
}

// Changes returns the overlay's upper directory of a sandbox made from
// image layers (see backend.ChangesReader).
func (b *Backend) Changes(spec *backend.Spec) (backend.Changes, error) {
	if err := backend.ValidateID(spec.ID); err != nil {
		return backend.Changes{}, err
	}
	if spec.Rootfs.Host || len(spec.Rootfs.Layers) == 0 {
		return backend.Changes{}, fmt.Errorf("%w: sandbox %s uses the host image, which has no layers to commit on; "+
			"only its /root, /home and /var/tmp are its own (copy them out with `agentkernel cp`)", errdefs.ErrFailedPrecondition, spec.Name)
	}
	l := b.layout(spec)
	if hasDisk(spec) {
		// A stopped sandbox's disk is not mounted: mount it to read it
		// (the next start uses the mount; Cleanup removes it).
		if _, err := os.Stat(l.diskImg); err != nil {
			return backend.Changes{}, fmt.Errorf("%w: sandbox %s has no disk yet (it never started): %v", errdefs.ErrFailedPrecondition, spec.Name, err)
		}
		if err := mountDisk(l.diskImg, l.disk); err != nil {
			return backend.Changes{}, err
		}
	}
	return backend.Changes{UpperDir: l.upper, Layers: spec.Rootfs.Layers}, nil
}

var _ backend.ChangesReader = (*Backend)(nil)

// Cleanup releases what a sandbox may hold on the host after its
// supervisor died: the runtime's state and processes, the overlay mount and
// the cgroup. It keeps StateDir's files (the daemon removes the directory
// when it destroys the sandbox). Idempotent; fine on a sandbox never started.
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
	return b.teardown(ctx, spec)
}

// teardown kills and deletes the container, unmounts its rootfs and
// removes its cgroup. Every step runs even if an earlier one failed.
func (b *Backend) teardown(ctx context.Context, s *backend.Spec) error {
	ctx, cancel := context.WithTimeout(ctx, teardownTimeout)
	defer cancel()
	var errs []error
	if err := b.check(ctx); err != nil {
		errs = append(errs, err)
	} else if err := b.runtime().delete(ctx, s.ID); err != nil {
		errs = append(errs, err)
	}
	if err := removeCgroup(ctx, oci.CgroupsPath(b.opts.CgroupParent, s.ID)); err != nil {
		errs = append(errs, err)
	}
	if err := unmountVolumes(s.StateDir); err != nil {
		errs = append(errs, err)
	}
	l := b.layout(s)
	if err := removeRootfs(l.rootfs); err != nil {
		errs = append(errs, err)
	}
	if err := removeRootfs(l.sysfs); err != nil { // a gateway sandbox's /sys
		errs = append(errs, err)
	}
	// After the rootfs, whose overlay's upper layer is on the disk; the
	// loop device detaches itself at the unmount (AUTOCLEAR).
	if err := unmountAll(l.disk); err != nil {
		errs = append(errs, fmt.Errorf("unmounting the sandbox's disk: %w", err))
	}
	if err := os.Remove(filepath.Join(l.agentRun, oci.AgentSocketName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// hasRuntimeState reports whether the runtime keeps state for sandbox id:
// runc a directory <root>/<id>, runsc a file <root>/<id>_sandbox:<id>.state.
func (b *Backend) hasRuntimeState(id string) bool {
	p := filepath.Join(b.opts.RuntimeRoot, id)
	if b.opts.Flavor == GVisor {
		p += "_sandbox:" + id + ".state"
	}
	_, err := os.Lstat(p)
	return err == nil
}

func (b *Backend) layout(s *backend.Spec) layout {
	l := layoutOf(s.StateDir, b.opts.RootfsDir, s.ID)
	if hasDisk(s) {
		l = l.onDisk()
	}
	return l
}

// openConsole opens console.log for appending, rotating it first if large.
func openConsole(p string) (*os.File, error) {
	if fi, err := os.Stat(p); err == nil && fi.Size() > maxConsoleLog {
		if err := os.Rename(p, p+".1"); err != nil {
			return nil, err
		}
	}
	return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW, 0o600)
}

// readPid reads the pid file runc wrote.
func readPid(p string) (int, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, fmt.Errorf("reading the init pid: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 32))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("bad init pid %q in %s", b, p)
	}
	return pid, nil
}
