package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/agentkernel/agentkernel/internal/image/layerdiff"
	"github.com/agentkernel/agentkernel/internal/image/unpack"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// MediaTypeLayer is the media type of the layers the store makes itself:
// uncompressed tars, so that a layer's blob digest is its diff-id.
const MediaTypeLayer = "application/vnd.oci.image.layer.v1.tar"

// NewLayer is a layer the store made from a directory or a tar stream.
type NewLayer struct {
	ID   string // diff-id hex: the layer's directory under layers/
	Blob Blob   // the uncompressed tar in the blob store
	Size int64  // bytes of regular files
}

// DiffLayer turns upper, the upper directory of a sandbox's overlay, into
// a layer (see internal/image/layerdiff), stores its tar as a blob and
// unpacks it like a pulled layer. exclude lists upper-relative paths left
// out. The layer is protected from garbage collection until release is
// called; publish an image using it before that.
func (s *Store) DiffLayer(ctx context.Context, upper string, exclude []string) (NewLayer, func(), error) {
	return s.AddLayer(ctx, func(w io.Writer) error {
		_, err := layerdiff.Write(ctx, w, upper, layerdiff.Options{
			Shift:   layerdiff.IDShift(s.shift),
			Exclude: exclude, MaxBytes: s.limits.MaxBytes, MaxEntries: s.limits.MaxEntries})
		return err
	})
}

// WriteTree writes the directory tree dir (a merged view of a sandbox's
// filesystem) to w as a tar, with owners shifted back out of the
// sandboxes' mapped range like DiffLayer; exclude lists dir-relative paths
// left out.
func (s *Store) WriteTree(ctx context.Context, w io.Writer, dir string, exclude []string) error {
	_, err := layerdiff.Write(ctx, w, dir, layerdiff.Options{
		Shift:   layerdiff.IDShift(s.shift),
		Exclude: exclude, MaxBytes: s.limits.MaxBytes, MaxEntries: s.limits.MaxEntries})
	return err
}

// AddLayer stores the uncompressed layer tar that write produces: first
// in a staging file (hashing it), then in the blob store, then unpacked
// under layers/<diff-id> unless that layer exists already. See DiffLayer
// for release.
func (s *Store) AddLayer(ctx context.Context, write func(io.Writer) error) (NewLayer, func(), error) {
	staging, done, err := s.stagingDir("diff-")
	if err != nil {
		return NewLayer{}, nil, err
	}
	defer done()
	tarPath := filepath.Join(staging, "layer.tar")
	f, err := os.OpenFile(tarPath, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return NewLayer{}, nil, err
	}
	defer f.Close()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	if err := write(cw); err != nil {
		return NewLayer{}, nil, fmt.Errorf("making the layer: %w", err)
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	l := NewLayer{ID: d.Hex, Blob: Blob{Digest: d.String(), Size: cw.n, MediaType: MediaTypeLayer}}
	release := s.lease([]string{layerKey(l.ID), blobKey(l.Blob.Digest)})
	ok := false
	defer func() {
		if !ok {
			release()
		}
	}()
	unlock := s.layerLocks.Lock(d.Hex)
	defer unlock()
	if _, have := s.blobs.Has(d); !have {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return NewLayer{}, nil, err
		}
		bw, err := s.blobs.Writer(d, cw.n)
		if err != nil {
			return NewLayer{}, nil, err
		}
		_, err = io.Copy(bw, f)
		if err == nil {
			err = bw.Commit()
		}
		bw.Close()
		if err != nil {
			return NewLayer{}, nil, fmt.Errorf("storing the layer blob: %w", err)
		}
	}
	if _, err := os.Stat(s.dir("layers", d.Hex)); err == nil {
		info, _ := s.layerInfo(d.Hex)
		l.Size = info.Size
		ok = true
		return l, release, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return NewLayer{}, nil, err
	}
	dir := filepath.Join(staging, "layer")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return NewLayer{}, nil, err
	}
	st, err := unpack.Layer(ctx, f, dir, unpack.Options{
		Shift: unpack.IDShift(s.shift), MaxBytes: s.limits.MaxBytes, MaxEntries: s.limits.MaxEntries})
	if err != nil {
		return NewLayer{}, nil, fmt.Errorf("unpacking the new layer: %w", err)
	}
	if len(st.Links) > 0 {
		// A committed layer is stacked as is; nothing would make these.
		return NewLayer{}, nil, fmt.Errorf("%w: the new layer hard-links %q to %q, not in the layer", errdefs.ErrInvalidArgument, st.Links[0].Path, st.Links[0].Target)
	}
	info := LayerInfo{ID: d.Hex, Size: st.Bytes, Entries: st.Entries, Unpacked: time.Now().UTC()}
	if err := writeJSON(s.dir("layerinfo", d.Hex+".json"), info); err != nil {
		return NewLayer{}, nil, err
	}
	if err := os.Rename(dir, s.dir("layers", d.Hex)); err != nil {
		return NewLayer{}, nil, fmt.Errorf("publishing layer %s: %w", d, err)
	}
	l.Size = st.Bytes
	ok = true
	return l, release, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// HasLayer says whether layers/<id> is stored (a build cache entry may
// name a layer that Prune has removed since).
func (s *Store) HasLayer(id string) bool {
	if !validLayerID(id) {
		return false
	}
	fi, err := os.Stat(s.dir("layers", id))
	return err == nil && fi.IsDir()
}

// Compose publishes image name made of parent's layers (none if parent
// is nil) with layers on top and config cfg. An existing image called
// name is replaced when replace is set (its content stays until Prune),
// else it is an ErrAlreadyExists. Layers made by AddLayer have their
// blobs recorded in LayerBlobs (positionally; a layer with no blob, such
// as an imported one, has an empty entry).
func (s *Store) Compose(name string, parent *Image, layers []NewLayer, cfg *Config, source string, replace bool) (*Image, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if name == HostImage {
		return nil, fmt.Errorf("%w: %q is the built-in host image", errdefs.ErrAlreadyExists, name)
	}
	if parent != nil && parent.Host {
		return nil, fmt.Errorf("%w: the host image has no layers to build on", errdefs.ErrFailedPrecondition)
	}
	img := &Image{Name: name, Created: time.Now().UTC(), Source: source, Platform: hostPlatform()}
	if cfg != nil {
		c := *cfg
		img.Config = &c
	}
	withBlobs := false
	if parent != nil {
		img.LayerIDs = slices.Clone(parent.LayerIDs)
		img.LayerBlobs = slices.Clone(parent.LayerBlobs)
		img.Size = parent.Size
		img.Platform = parent.Platform
		withBlobs = len(parent.LayerBlobs) > 0
	}
	for _, l := range layers {
		if !validLayerID(l.ID) {
			return nil, fmt.Errorf("%w: bad layer id %q", errdefs.ErrInvalidArgument, l.ID)
		}
		img.LayerIDs = append(img.LayerIDs, l.ID)
		img.Size += l.Size
		if l.Blob.Digest != "" {
			withBlobs = true
		}
	}
	if withBlobs {
		for len(img.LayerBlobs) < len(img.LayerIDs)-len(layers) {
			img.LayerBlobs = append(img.LayerBlobs, Blob{})
		}
		for _, l := range layers {
			img.LayerBlobs = append(img.LayerBlobs, l.Blob)
		}
	}
	if len(img.LayerIDs) == 0 || len(img.LayerIDs) > maxLayers {
		return nil, fmt.Errorf("%w: an image of %d layers (1 to %d are supported)", errdefs.ErrInvalidArgument, len(img.LayerIDs), maxLayers)
	}
	h := sha256.New()
	for _, id := range img.LayerIDs {
		h.Write([]byte(id + "\n"))
	}
	img.ID = hex.EncodeToString(h.Sum(nil))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range img.LayerIDs {
		if !s.HasLayer(id) {
			return nil, fmt.Errorf("%w: layer %s is gone (pruned meanwhile?)", errdefs.ErrNotFound, id)
		}
		img.Layers = append(img.Layers, s.dir("layers", id))
	}
	if _, err := os.Stat(s.metaPath(name)); err == nil && !replace {
		return nil, fmt.Errorf("%w: image %q", errdefs.ErrAlreadyExists, name)
	}
	if err := s.publishLocked(img); err != nil {
		return nil, err
	}
	return img, nil
}

func hostPlatform() string { return "linux/" + runtime.GOARCH }

// Drop removes the name of an image without collecting its content:
// what no other image uses stays until Prune. Builds use it for the
// images of their steps, whose layers the final image reuses.
func (s *Store) Drop(name string) error {
	if name == HostImage {
		return fmt.Errorf("%w: the host image cannot be removed", errdefs.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.metaPath(name)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return s.writeIndexLocked()
}
