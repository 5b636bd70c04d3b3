package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/debootstrap"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/mountinfo"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// maxBuildTime bounds one image build.
const maxBuildTime = time.Hour

// systemCacheDir is where root's daemons cache Debian package downloads,
// shared by every home on the host.
const systemCacheDir = "/var/cache/agentkernel"

// Builder runs image builds, one at a time (sem), in directories under
// the home's build/ directory; a build directory left by a daemon that
// died is removed by the next build. It also commits and exports
// sandboxes. It is safe for concurrent use.
type Builder struct {
	images *image.Store
	home   string // the daemon's home (memory snapshots live below)
	deb    *debootstrap.Builder
	dir    string // <home>/build
	cache  string // <home>/buildcache: Dockerfile step results
	log    *slog.Logger
	sem    chan struct{}
	// sbx runs the sandboxes of Dockerfile builds and finds the changes
	// of the sandboxes it commits and exports; nil refuses those.
	sbx Sandboxes
}

// Sandboxes is what the builder needs of the sandbox manager: a sandbox
// per Dockerfile step, and where a sandbox keeps its filesystem changes.
// internal/sandbox.Manager implements it; tests use a fake.
type Sandboxes interface {
	CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error)
	GetSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	StopSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	RemoveSandbox(ctx context.Context, name string) error
	Mkdir(ctx context.Context, name, path string) error
	TarIn(ctx context.Context, name, dir string, r io.Reader) error
	Exec(ctx context.Context, name string, opts sandbox.ExecOptions) (sandbox.Process, error)
	SandboxChanges(ctx context.Context, name string) (backend.Changes, *backend.Spec, error)
}

// Options configure New.
type Options struct {
	// Home is the daemon's home; builds work under Home/build.
	Home   string
	Images *image.Store
	// Sandboxes runs Dockerfile steps and is asked for the changes of
	// committed and exported sandboxes; nil refuses those operations.
	Sandboxes Sandboxes
	Logger    *slog.Logger
}

// New returns a Builder. As root, Debian package downloads are cached
// host-wide (systemCacheDir), else under the home.
func New(o Options) *Builder {
	cache := filepath.Join(o.Home, "cache")
	if os.Geteuid() == 0 {
		cache = systemCacheDir
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Builder{
		images: o.Images,
		home:   o.Home,
		deb:    debootstrap.New(debootstrap.Options{CacheDir: filepath.Join(cache, "debootstrap")}),
		dir:    filepath.Join(o.Home, "build"),
		cache:  filepath.Join(o.Home, "buildcache"),
		log:    log,
		sem:    make(chan struct{}, 1),
		sbx:    o.Sandboxes,
	}
}

// acquire takes the builder (one build at a time), saying so in progress
// when it has to wait; it gives up when ctx ends.
func (b *Builder) acquire(ctx context.Context, progress func(api.BuildProgress)) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	default:
	}
	progress(api.BuildProgress{Stage: api.BuildStageWait, Message: "waiting for another build to finish"})
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func imageInfo(img *image.Image) api.ImageInfo {
	return api.ImageInfo{Name: img.Name, ID: img.ID, Size: img.Size, CreatedAt: img.Created, Source: img.Source}
}

// BuildImage builds a Debian image with debootstrap and imports it into the
// store. See api.ImageBuilder.
func (b *Builder) BuildImage(ctx context.Context, req api.BuildImageRequest, progress func(api.BuildProgress)) (api.ImageInfo, error) {
	if progress == nil {
		progress = func(api.BuildProgress) {}
	}
	if req.Dockerfile != nil && req.Debian == nil {
		return b.buildDockerfile(ctx, req, progress)
	}
	if req.Debian == nil || req.Dockerfile != nil {
		return api.ImageInfo{}, fmt.Errorf("%w: say what to build from: exactly one of debian or dockerfile", errdefs.ErrInvalidArgument)
	}
	if req.Network != nil {
		return api.ImageInfo{}, fmt.Errorf("%w: network applies to a Dockerfile's RUN steps; a Debian build downloads from its mirror itself", errdefs.ErrInvalidArgument)
	}
	if err := image.ValidateName(req.Name); err != nil {
		return api.ImageInfo{}, err
	}
	if _, err := b.images.Get(req.Name); err == nil {
		return api.ImageInfo{}, fmt.Errorf("%w: image %q (remove it first)", errdefs.ErrAlreadyExists, req.Name)
	}
	dreq, err := b.deb.Check(debootstrap.Request{Suite: req.Debian.Suite, Packages: req.Debian.Packages,
		Mirror: req.Debian.Mirror, NoCache: req.NoCache})
	if err != nil {
		return api.ImageInfo{}, err
	}
	if err := b.deb.Preflight(); err != nil {
		return api.ImageInfo{}, err
	}

	ctx, cancel := context.WithTimeout(ctx, maxBuildTime)
	defer cancel()
	if err := b.acquire(ctx, progress); err != nil {
		return api.ImageInfo{}, err
	}
	defer func() { <-b.sem }()
	if _, err := b.images.Get(req.Name); err == nil {
		return api.ImageInfo{}, fmt.Errorf("%w: image %q was made while this build waited", errdefs.ErrAlreadyExists, req.Name)
	}

	b.sweep()
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return api.ImageInfo{}, err
	}
	work, err := os.MkdirTemp(b.dir, "debian-")
	if err != nil {
		return api.ImageInfo{}, err
	}
	defer b.remove(work)
	root := filepath.Join(work, "rootfs")
	log := b.log.With("image", req.Name, "suite", dreq.Suite, "mirror", dreq.Mirror)
	log.Info("building a Debian image", "packages", strings.Join(dreq.Packages, ","))
	start := time.Now()
	err = b.deb.Build(ctx, dreq, root, func(p debootstrap.Progress) {
		progress(api.BuildProgress{Stage: p.Stage, Message: p.Message})
	})
	if err != nil {
		if ctx.Err() != nil {
			return api.ImageInfo{}, ctx.Err()
		}
		return api.ImageInfo{}, err
	}
	progress(api.BuildProgress{Stage: api.BuildStageImport, Message: "adding the root filesystem to the image store"})
	img, err := b.images.Import(ctx, req.Name, root)
	if err != nil {
		return api.ImageInfo{}, err
	}
	log.Info("built a Debian image", "duration", time.Since(start).Round(time.Millisecond), "size", img.Size)
	info := imageInfo(img)
	info.Source = "debian:" + dreq.Suite
	if len(dreq.Packages) > 0 {
		info.Source += "+" + strings.Join(dreq.Packages, ",")
	}
	return info, nil
}

// sweep removes what builds of a dead daemon left. Only one daemon serves
// a home and b.sem is held, so every entry of b.dir is stale.
func (b *Builder) sweep() {
	entries, _ := os.ReadDir(b.dir)
	for _, e := range entries {
		b.remove(filepath.Join(b.dir, e.Name()))
	}
}

// remove deletes a build directory. Anything still mounted below it (the
// build runs in its own mount namespace, so nothing should be) is
// unmounted first; if that fails the directory is left alone rather than
// risk deleting through a mount into the host.
func (b *Builder) remove(dir string) {
	if err := unmountBelow(dir); err != nil {
		b.log.Error("build directory is still mounted on; leaving it", "dir", dir, "err", err)
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		b.log.Warn("removing a build directory", "dir", dir, "err", err)
	}
}

// unmountBelow detaches every mount at or below dir in this mount
// namespace, deepest first, and checks that none is left.
func unmountBelow(dir string) error {
	for attempt := 0; ; attempt++ {
		mps, err := mountsBelow(dir)
		if err != nil || len(mps) == 0 {
			return err
		}
		if attempt == 3 {
			return fmt.Errorf("still mounted: %s", strings.Join(mps, ", "))
		}
		for i := len(mps) - 1; i >= 0; i-- {
			if err := unix.Unmount(mps[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmounting %s: %w", mps[i], err)
			}
		}
	}
}

// mountsBelow lists the mount points at or below dir, parents before
// children.
func mountsBelow(dir string) ([]string, error) {
	ms, err := mountinfo.Self()
	if err != nil {
		return nil, err
	}
	return mountinfo.Under(ms, filepath.Clean(dir)), nil
}
