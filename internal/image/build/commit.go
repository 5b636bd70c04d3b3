package build

import (
	"context"
	"fmt"
	"slices"

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
func (b *Builder) CommitSandbox(ctx context.Context, name string, req api.CommitSandboxRequest) (api.ImageInfo, error) {
	if err := image.ValidateName(req.Image); err != nil {
		return api.ImageInfo{}, err
	}
	if b.sbx == nil {
		return api.ImageInfo{}, fmt.Errorf("%w: this daemon cannot commit sandboxes", errdefs.ErrNotImplemented)
	}
	parent, upper, err := b.sandboxLayers(ctx, name)
	if err != nil {
		return api.ImageInfo{}, err
	}
	l, release, err := b.images.DiffLayer(ctx, upper, []string{agentDir})
	if err != nil {
		return api.ImageInfo{}, fmt.Errorf("committing sandbox %s: %w", name, err)
	}
	defer release()
	source := "commit of sandbox " + name
	if req.Message != "" {
		source += ": " + req.Message
	}
	img, err := b.images.Compose(req.Image, parent, []image.NewLayer{l}, parent.Config, source, true)
	if err != nil {
		return api.ImageInfo{}, err
	}
	b.log.Info("committed a sandbox", "sandbox", name, "image", img.Name, "layer", l.ID, "size", l.Size)
	return imageInfo(img), nil
}

// sandboxLayers returns the image a sandbox was made from (its layers as
// its spec records them, with the config of the image of that name if it
// still has those layers, else the spec's) and the directory of its
// changes.
func (b *Builder) sandboxLayers(ctx context.Context, name string) (*image.Image, string, error) {
	ch, spec, err := b.sbx.SandboxChanges(ctx, name)
	if err != nil {
		return nil, "", err
	}
	sb, err := b.sbx.GetSandbox(ctx, name)
	if err != nil {
		return nil, "", err
	}
	info := sb.Image
	parent := &image.Image{Name: info}
	for _, l := range ch.Layers {
		id, err := b.images.LayerID(l)
		if err != nil {
			return nil, "", fmt.Errorf("%w: sandbox %s has a layer outside the image store (%s)", errdefs.ErrFailedPrecondition, name, l)
		}
		parent.LayerIDs = append(parent.LayerIDs, id)
	}
	if img, err := b.images.Get(info); err == nil && slices.Equal(img.LayerIDs, parent.LayerIDs) {
		parent = img
	} else {
		parent.Config = &image.Config{Env: spec.Env, WorkingDir: spec.Workdir, User: spec.User, Cmd: spec.Cmd}
	}
	return parent, ch.UpperDir, nil
}
