package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/httpapi"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// agentDir is the top directory of the sandbox that belongs to
// agentkernel (the agent binary and its run directory); it is never part
// of a committed layer.
const agentDir = ".agentkernel"

// CommitSandbox saves the changes of a container sandbox (its overlay's
// upper directory) as a new layer on top of the layers it was made from,
// and publishes the result as req.Image (moving that name if taken). A
// running sandbox is committed as it is at the time (nothing is paused,
// so files written meanwhile may or may not be in it); /tmp and /run are
// tmpfs and never committed. Sandboxes of the host image are refused:
// they have no layers, only the persisted /root, /home and /var/tmp.
func (b *builder) CommitSandbox(ctx context.Context, name string, req api.CommitSandboxRequest) (api.ImageInfo, error) {
	if err := image.ValidateName(req.Image); err != nil {
		return api.ImageInfo{}, err
	}
	if b.mgr == nil {
		return api.ImageInfo{}, fmt.Errorf("%w: this daemon cannot commit sandboxes", errdefs.ErrNotImplemented)
	}
	info, err := b.mgr.GetSandbox(ctx, name)
	if err != nil {
		return api.ImageInfo{}, err
	}
	parent, upper, err := b.sandboxLayers(info)
	if err != nil {
		return api.ImageInfo{}, err
	}
	l, release, err := b.images.DiffLayer(ctx, upper, []string{agentDir})
	if err != nil {
		return api.ImageInfo{}, fmt.Errorf("committing sandbox %s: %w", name, err)
	}
	defer release()
	source := "commit of sandbox " + info.Name
	if req.Message != "" {
		source += ": " + req.Message
	}
	img, err := b.images.Compose(req.Image, parent, []image.NewLayer{l}, parent.Config, source, true)
	if err != nil {
		return api.ImageInfo{}, err
	}
	b.log.Info("committed a sandbox", "sandbox", info.Name, "image", img.Name, "layer", l.ID, "size", l.Size)
	return toImageInfo(img), nil
}

// sandboxLayers returns the image a container sandbox was made from (its
// layers as its spec records them, with the config of the image of that
// name if it still has those layers, else the spec's) and the sandbox's
// upper directory.
func (b *builder) sandboxLayers(info api.SandboxInfo) (*image.Image, string, error) {
	if info.Backend != "container" {
		return nil, "", fmt.Errorf("%w: sandbox %s runs on the %s backend; only container sandboxes can be committed or exported", errdefs.ErrNotImplemented, info.Name, info.Backend)
	}
	dir := b.layout.SandboxDir(strings.ReplaceAll(info.UUID, "-", ""))
	spec, err := backend.ReadSpec(dir)
	if err != nil {
		return nil, "", fmt.Errorf("reading the spec of sandbox %s: %w", info.Name, err)
	}
	if spec.Rootfs.Host || len(spec.Rootfs.Layers) == 0 {
		return nil, "", fmt.Errorf("%w: sandbox %s uses the host image, which has no layers to commit on; "+
			"only its /root, /home and /var/tmp are its own (copy them out with `agentkernel cp`)", errdefs.ErrFailedPrecondition, info.Name)
	}
	layersDir := filepath.Join(b.images.Root(), "layers")
	parent := &image.Image{Name: info.Image}
	for _, l := range spec.Rootfs.Layers {
		if filepath.Dir(l) != layersDir {
			return nil, "", fmt.Errorf("%w: sandbox %s has a layer outside the image store (%s)", errdefs.ErrFailedPrecondition, info.Name, l)
		}
		parent.LayerIDs = append(parent.LayerIDs, filepath.Base(l))
	}
	if img, err := b.images.Get(info.Image); err == nil && slices.Equal(img.LayerIDs, parent.LayerIDs) {
		parent = img
	} else {
		parent.Config = &image.Config{Env: spec.Env, WorkingDir: spec.Workdir, User: spec.User, Cmd: spec.Cmd}
	}
	return parent, filepath.Join(dir, "overlay", "upper"), nil
}

var _ httpapi.SandboxCommitter = service{}
