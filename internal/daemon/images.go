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
	return r, nil
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
