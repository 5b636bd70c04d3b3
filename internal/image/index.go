package image

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/agentkernel/agentkernel/internal/image/unpack"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// LayerInfo is what the store remembers about one unpacked layer, in
// layerinfo/<id>.json.
type LayerInfo struct {
	ID string `json:"id"`
	// Size is the bytes of regular files in the layer.
	Size     int64     `json:"size"`
	Entries  int       `json:"entries"`
	Unpacked time.Time `json:"unpacked"`
	// Links are the layer's hard links to files of lower layers, left
	// out of its directory and made by a links layer above it (links.go).
	Links []unpack.LowerLink `json:"links,omitempty"`
}

func (s *Store) layerInfo(id string) (LayerInfo, error) {
	var info LayerInfo
	f, err := os.Open(s.dir("layerinfo", id+".json"))
	if err != nil {
		return info, err
	}
	defer f.Close()
	err = json.NewDecoder(io.LimitReader(bufio.NewReader(f), maxMetaBytes)).Decode(&info)
	return info, err
}

// Tag gives the image called src a second name, dst (a reference such as
// "mytools:1" or "registry.example/x:y"). An image already called dst is
// replaced; its content stays until Prune if nothing else uses it.
func (s *Store) Tag(src, dst string) (*Image, error) {
	img, err := s.Get(src)
	if err != nil {
		return nil, err
	}
	if img.Host {
		return nil, fmt.Errorf("%w: the host image cannot be tagged", errdefs.ErrInvalidArgument)
	}
	ref, err := name.ParseReference(dst)
	if err != nil || len(dst) > 255 {
		return nil, fmt.Errorf("%w: bad image name %.100q", errdefs.ErrInvalidArgument, dst)
	}
	n := Familiar(ref)
	if _, ok := ref.(name.Digest); ok {
		return nil, fmt.Errorf("%w: a tag cannot be a digest (%s)", errdefs.ErrInvalidArgument, dst)
	}
	if n == HostImage || dst == HostImage {
		return nil, fmt.Errorf("%w: %q is the built-in host image", errdefs.ErrAlreadyExists, dst)
	}
	out := *img
	out.Name = n
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := writeJSON(s.metaPath(n), &out); err != nil {
		return nil, err
	}
	if err := s.writeIndexLocked(); err != nil {
		return nil, err
	}
	return &out, nil
}

// publishLocked writes img's metadata, making it visible under its name,
// and refreshes index.json. The caller holds s.mu.
func (s *Store) publishLocked(img *Image) error {
	if err := writeJSON(s.metaPath(img.Name), img); err != nil {
		return err
	}
	return s.writeIndexLocked()
}

// ociIndex is the index.json of an OCI image layout.
type ociIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     []ociDescriptor `json:"manifests"`
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// writeIndexLocked rewrites index.json from the pulled images' metadata,
// so that the store is an OCI image layout other tools can read
// (org.opencontainers.image.ref.name is the image's name). The caller
// holds s.mu.
func (s *Store) writeIndexLocked() error {
	imgs, err := s.List()
	if err != nil {
		return err
	}
	idx := ociIndex{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json", Manifests: []ociDescriptor{}}
	for _, img := range imgs {
		if img.Manifest == nil {
			continue
		}
		idx.Manifests = append(idx.Manifests, ociDescriptor{
			MediaType: img.Manifest.MediaType, Digest: img.Manifest.Digest, Size: img.Manifest.Size,
			Annotations: map[string]string{"org.opencontainers.image.ref.name": img.Name},
		})
	}
	return writeJSON(s.dir("index.json"), idx)
}
