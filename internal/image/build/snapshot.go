package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/faultpoint"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/version"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// A filesystem snapshot is a sandbox commit (CommitSandbox's layer on top
// of the sandbox's image) published in the image store as
// snapshotRepo:NAME, with its metadata in that image's config labels.
// The metadata lives with the image rather than in the sandbox database
// because the image is the snapshot: its layers are stored by digest,
// removed with it, kept while a sandbox runs from them (Store.Remove
// refuses), and a record elsewhere could outlive or miss them. Sandbox
// names fit an image tag's alphabet, so NAME is the tag as is.
const (
	snapshotRepo        = "agentkernel-snapshot"
	labelSnapshot       = "dev.agentkernel.snapshot.name"
	labelSnapshotSbx    = "dev.agentkernel.snapshot.sandbox"
	labelSnapshotBknd   = "dev.agentkernel.snapshot.backend"
	labelSnapshotFormat = "dev.agentkernel.snapshot.format"
	labelSnapshotVer    = "dev.agentkernel.snapshot.version"
)

func snapshotImage(name string) string { return snapshotRepo + ":" + name }

// TakeSnapshot commits sandbox req.Sandbox as snapshot req.Name.
func (b *Builder) TakeSnapshot(ctx context.Context, req api.TakeSnapshotRequest) (api.SnapshotInfo, error) {
	if err := api.ValidateSandboxName(req.Sandbox); err != nil {
		return api.SnapshotInfo{}, err
	}
	if req.Name == "" {
		req.Name = req.Sandbox + "-snap-" + strconv.FormatInt(time.Now().Unix(), 10)
	}
	if err := validSnapshotName(req.Name); err != nil {
		return api.SnapshotInfo{}, err
	}
	if b.sbx == nil {
		return api.SnapshotInfo{}, fmt.Errorf("%w: this daemon cannot snapshot sandboxes", errdefs.ErrNotImplemented)
	}
	sb, err := b.sbx.GetSandbox(ctx, req.Sandbox)
	if err != nil {
		return api.SnapshotInfo{}, err
	}
	var mem MemorySandboxes
	if req.Memory {
		if mem, err = b.memSandboxes(sb.Backend); err != nil {
			return api.SnapshotInfo{}, err
		}
	}
	if _, err := b.images.Get(snapshotImage(req.Name)); err == nil {
		return api.SnapshotInfo{}, fmt.Errorf("%w: snapshot %q already exists", errdefs.ErrAlreadyExists, req.Name)
	}
	// A memory snapshot pauses the sandbox at its checkpoint and captures
	// its files before it goes on, so that both show the same moment.
	var memTmp string
	var memSpec *backend.Spec
	resumeOnce := func() {}
	if mem != nil {
		if _, memSpec, err = b.sbx.SandboxChanges(ctx, req.Sandbox); err != nil {
			return api.SnapshotInfo{}, err
		}
		if err := memorySnapshotable(memSpec); err != nil {
			return api.SnapshotInfo{}, err
		}
		tmp, resume, err := b.checkpoint(ctx, mem, req.Sandbox)
		if err != nil {
			return api.SnapshotInfo{}, err
		}
		memTmp = tmp
		var once sync.Once
		resumeOnce = func() {
			once.Do(func() {
				if err := resume(); err != nil {
					b.log.Warn("resuming the sandbox after its memory snapshot", "sandbox", req.Sandbox, "err", err)
				}
			})
		}
		defer func() {
			resumeOnce()
			if memTmp != "" {
				os.RemoveAll(memTmp)
			}
		}()
	}
	parent, upper, err := b.sandboxLayers(ctx, req.Sandbox)
	if err != nil {
		return api.SnapshotInfo{}, err
	}
	l, release, err := b.images.DiffLayer(ctx, upper, []string{agentDir})
	if err != nil {
		return api.SnapshotInfo{}, fmt.Errorf("snapshotting sandbox %s: %w", req.Sandbox, err)
	}
	defer release()
	// The layer is made: the sandbox need not wait for the rest.
	resumeOnce()
	faultpoint.Hit(ctx, faultpoint.SnapshotDiffed)
	cfg := image.Config{}
	if parent.Config != nil {
		cfg = *parent.Config
	}
	labels := map[string]string{}
	for k, v := range cfg.Labels {
		if !strings.HasPrefix(k, "dev.agentkernel.snapshot.") {
			labels[k] = v
		}
	}
	labels[labelSnapshot] = req.Name
	labels[labelSnapshotSbx] = req.Sandbox
	labels[labelSnapshotBknd] = sb.Backend
	labels[labelSnapshotFormat] = strconv.Itoa(api.SnapshotFormat)
	labels[labelSnapshotVer] = version.Version
	if mem != nil {
		digest, size, err := b.sealCheckpoint(memTmp)
		if err != nil {
			return api.SnapshotInfo{}, fmt.Errorf("storing the memory checkpoint: %w", err)
		}
		memTmp = ""
		memoryLabels(labels, digest, memSpec)
		b.log.Info("took a memory checkpoint", "sandbox", req.Sandbox, "digest", digest, "size", size)
	}
	cfg.Labels = labels
	img, err := b.images.Compose(snapshotImage(req.Name), parent, []image.NewLayer{l}, &cfg,
		"snapshot of sandbox "+req.Sandbox+" (image "+sb.Image+")", false)
	if err != nil {
		if d := labels[labelSnapshotMemory]; d != "" {
			if dir, derr := b.memoryDir(d); derr == nil {
				os.RemoveAll(dir)
			}
		}
		return api.SnapshotInfo{}, err
	}
	b.log.Info("took a snapshot", "sandbox", req.Sandbox, "snapshot", req.Name, "layer", l.ID, "memory", mem != nil)
	return snapshotInfo(img), nil
}

func validSnapshotName(name string) error {
	if err := api.ValidateSandboxName(name); err != nil {
		return fmt.Errorf("%w (snapshot names follow the sandbox name rules)", err)
	}
	return nil
}

func snapshotInfo(img *image.Image) api.SnapshotInfo {
	info := api.SnapshotInfo{Name: strings.TrimPrefix(img.Name, snapshotRepo+":"), Image: img.Name, ImageID: img.ID,
		Size: img.Size, CreatedAt: img.Created, Kind: "filesystem"}
	if img.Config != nil {
		l := img.Config.Labels
		info.SourceSandbox, info.SourceBackend, info.Version = l[labelSnapshotSbx], l[labelSnapshotBknd], l[labelSnapshotVer]
		info.Format, _ = strconv.Atoi(l[labelSnapshotFormat])
		if l[labelSnapshotMemory] != "" {
			info.Kind, info.Memory = "memory", l[labelSnapshotMemory]
		}
	}
	return info
}

// ListSnapshots lists the snapshots, oldest first.
func (b *Builder) ListSnapshots(ctx context.Context) ([]api.SnapshotInfo, error) {
	imgs, err := b.images.List()
	if err != nil {
		return nil, err
	}
	out := []api.SnapshotInfo{}
	for _, img := range imgs {
		if strings.HasPrefix(img.Name, snapshotRepo+":") {
			out = append(out, snapshotInfo(img))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// GetSnapshot describes snapshot name.
func (b *Builder) GetSnapshot(ctx context.Context, name string) (api.SnapshotInfo, error) {
	if err := validSnapshotName(name); err != nil {
		return api.SnapshotInfo{}, err
	}
	img, err := b.images.Get(snapshotImage(name))
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return api.SnapshotInfo{}, fmt.Errorf("%w: no snapshot %q", errdefs.ErrNotFound, name)
		}
		return api.SnapshotInfo{}, err
	}
	return snapshotInfo(img), nil
}

// DeleteSnapshot removes snapshot name and the layers only it holds. As
// with image removal, it is refused while a running sandbox restored from
// it still has those layers mounted.
func (b *Builder) DeleteSnapshot(ctx context.Context, name string) error {
	snap, err := b.GetSnapshot(ctx, name)
	if err != nil {
		return err
	}
	if err := b.images.Remove(snapshotImage(name)); err != nil {
		if errors.Is(err, errdefs.ErrFailedPrecondition) {
			return fmt.Errorf("%w: snapshot %q is in use by a running sandbox restored from it (stop or remove that sandbox first)", errdefs.ErrFailedPrecondition, name)
		}
		return err
	}
	if snap.Memory != "" {
		if dir, err := b.memoryDir(snap.Memory); err == nil {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("removing the memory checkpoint of snapshot %q: %w", name, err)
			}
		}
	}
	return nil
}

// RestoreSnapshot creates (and starts) a sandbox from snapshot name.
func (b *Builder) RestoreSnapshot(ctx context.Context, name string, req api.RestoreSnapshotRequest) (api.SandboxInfo, error) {
	snap, err := b.GetSnapshot(ctx, name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	if snap.Format != api.SnapshotFormat {
		return api.SandboxInfo{}, fmt.Errorf("%w: snapshot %q has format %d; this agentkernel (%s) restores format %d only",
			errdefs.ErrFailedPrecondition, name, snap.Format, version.Version, api.SnapshotFormat)
	}
	if req.As == "" {
		req.As = name
	}
	if err := api.ValidateSandboxName(req.As); err != nil {
		return api.SandboxInfo{}, err
	}
	if req.Backend == "" {
		req.Backend = snap.SourceBackend
	}
	if b.sbx == nil {
		return api.SandboxInfo{}, fmt.Errorf("%w: this daemon cannot restore snapshots", errdefs.ErrNotImplemented)
	}
	if snap.Memory != "" {
		img, err := b.images.Get(snap.Image)
		if err != nil || img.Config == nil {
			return api.SandboxInfo{}, fmt.Errorf("%w: snapshot %q has no image config (%v)", errdefs.ErrFailedPrecondition, name, err)
		}
		return b.restoreMemory(ctx, snap, img.Config.Labels, req)
	}
	return b.sbx.CreateSandbox(ctx, api.CreateSandboxRequest{Name: req.As, Image: snap.Image, Backend: req.Backend, TTL: req.TTL,
		Labels: map[string]string{"agentkernel.snapshot": name}})
}

// ForkNote is what a fork from a filesystem snapshot answers (the
// parent's backend takes no memory snapshots): processes restart.
const ForkNote = "filesystem fork: the children start from the parent's files; processes restart (this backend takes no memory snapshots)"

// MemoryForkNote is what a fork from a memory snapshot answers.
const MemoryForkNote = "memory fork: each child continues the parent's processes from the moment of the fork"

// ForkSandbox takes a filesystem snapshot of sandbox name and restores it
// req.Count times as PREFIX-1..N.
func (b *Builder) ForkSandbox(ctx context.Context, name string, req api.ForkSandboxRequest) (api.ForkSandboxResponse, error) {
	if req.Count == 0 {
		req.Count = 1
	}
	if req.Count < 0 || req.Count > 64 {
		return api.ForkSandboxResponse{}, fmt.Errorf("%w: count must be between 1 and 64", errdefs.ErrInvalidArgument)
	}
	if req.Prefix == "" {
		req.Prefix = name + "-fork"
	}
	if err := api.ValidateSandboxName(req.Prefix + "-" + strconv.Itoa(req.Count)); err != nil {
		return api.ForkSandboxResponse{}, err
	}
	// From a memory snapshot where the backend takes them.
	memory, note := false, ForkNote
	if b.sbx != nil {
		if sb, err := b.sbx.GetSandbox(ctx, name); err == nil {
			if _, err := b.memSandboxes(sb.Backend); err == nil && sb.Status == api.StatusRunning {
				memory, note = true, MemoryForkNote
			}
		}
	}
	snap, err := b.TakeSnapshot(ctx, api.TakeSnapshotRequest{Sandbox: name, Memory: memory,
		Name: req.Prefix + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if err != nil {
		return api.ForkSandboxResponse{}, err
	}
	resp := api.ForkSandboxResponse{Snapshot: snap, Note: note, Sandboxes: []api.SandboxInfo{}}
	for i := 1; i <= req.Count; i++ {
		sb, err := b.RestoreSnapshot(ctx, snap.Name, api.RestoreSnapshotRequest{As: req.Prefix + "-" + strconv.Itoa(i)})
		if err != nil {
			return resp, fmt.Errorf("fork %d of %d: %w", i, req.Count, err)
		}
		resp.Sandboxes = append(resp.Sandboxes, sb)
	}
	return resp, nil
}
