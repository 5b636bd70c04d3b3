package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// imageService adapts the image store to what the sandbox manager needs.
type imageService struct{ s *image.Store }

func (i imageService) Resolve(ctx context.Context, name string) (sandbox.ResolvedImage, error) {
	img, err := i.s.Get(name)
	if err != nil {
		return sandbox.ResolvedImage{}, err
	}
	r := sandbox.ResolvedImage{Name: img.Name}
	if img.Host {
		r.Rootfs.Host = true
	} else {
		r.Rootfs.Layers = img.Layers
	}
	if c := img.Config; c != nil {
		r.Env, r.Workdir, r.User = c.Env, c.WorkingDir, c.User
		r.Cmd = append(append([]string(nil), c.Entrypoint...), c.Cmd...)
	}
	return r, nil
}

func (i imageService) Pull(ctx context.Context, req api.PullImageRequest, progress func(api.PullProgress)) (api.ImageInfo, error) {
	opts := image.PullOptions{Insecure: req.InsecureRegistries}
	if progress != nil {
		opts.Progress = func(ev image.PullEvent) {
			progress(api.PullProgress{Layer: ev.Layer, Status: ev.Status, Current: ev.Current, Total: ev.Total})
		}
	}
	img, err := i.s.Pull(ctx, req.Image, opts)
	if err != nil {
		return api.ImageInfo{}, err
	}
	return toImageInfo(img), nil
}

func (i imageService) Inspect(ctx context.Context, name string) (api.ImageDetails, error) {
	img, err := i.s.Get(name)
	if err != nil {
		return api.ImageDetails{}, err
	}
	d := api.ImageDetails{ImageInfo: toImageInfo(img), Platform: img.Platform, Layers: []api.ImageLayer{}}
	if img.Manifest != nil {
		d.Digest = img.Manifest.Digest
	}
	for n, id := range img.LayerIDs {
		l := api.ImageLayer{ID: id}
		if n < len(img.LayerBlobs) {
			b := img.LayerBlobs[n]
			l.Digest, l.Size, l.MediaType = b.Digest, b.Size, b.MediaType
		}
		d.Layers = append(d.Layers, l)
	}
	if c := img.Config; c != nil {
		d.Config = &api.ImageConfig{Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir,
			User: c.User, Labels: c.Labels, ExposedPorts: c.ExposedPorts}
		if !c.Created.IsZero() {
			created := c.Created
			d.Config.Created = &created
		}
	}
	return d, nil
}

func (i imageService) Tag(ctx context.Context, source, target string) (api.ImageInfo, error) {
	img, err := i.s.Tag(source, target)
	if err != nil {
		return api.ImageInfo{}, err
	}
	return toImageInfo(img), nil
}

func (i imageService) Prune(ctx context.Context) (api.PruneImagesResponse, error) {
	rep, err := i.s.Prune()
	return api.PruneImagesResponse{Blobs: rep.Blobs, Layers: rep.Layers, Bytes: rep.Bytes}, err
}

func (i imageService) List(ctx context.Context) ([]api.ImageInfo, error) {
	imgs, err := i.s.List()
	if err != nil {
		return nil, err
	}
	out := make([]api.ImageInfo, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, toImageInfo(img))
	}
	return out, nil
}

func (i imageService) Import(ctx context.Context, name, path string) (api.ImageInfo, error) {
	img, err := i.s.Import(ctx, name, path)
	if errors.Is(err, fs.ErrNotExist) {
		return api.ImageInfo{}, fmt.Errorf("%w: %v", errdefs.ErrNotFound, err)
	}
	if err != nil {
		return api.ImageInfo{}, err
	}
	return toImageInfo(img), nil
}

func (i imageService) Remove(ctx context.Context, name string) error { return i.s.Remove(name) }

func toImageInfo(img *image.Image) api.ImageInfo {
	return api.ImageInfo{Name: img.Name, ID: img.ID, Size: img.Size, CreatedAt: img.Created, Source: img.Source}
}
