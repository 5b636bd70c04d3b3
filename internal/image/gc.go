package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/agentkernel/agentkernel/internal/mountinfo"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Keys of the content an image refers to, as used by leases and garbage
// collection: "blob:sha256:<hex>" and "layer:<id>".
func blobKey(d string) string   { return "blob:" + d }
func layerKey(id string) string { return "layer:" + id }

// refs returns the keys of everything img needs.
func (img *Image) refs() []string {
	var out []string
	for _, id := range img.LayerIDs {
		out = append(out, layerKey(id))
	}
	if img.Manifest != nil {
		out = append(out, blobKey(img.Manifest.Digest))
	}
	if img.ConfigBlob != nil {
		out = append(out, blobKey(img.ConfigBlob.Digest))
	}
	for _, b := range img.LayerBlobs {
		if b.Digest == "" {
			continue // a layer with no blob (imported), see Compose
		}
		out = append(out, blobKey(b.Digest))
	}
	return out
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Blobs  int   `json:"blobs"`
	Layers int   `json:"layers"`
	Bytes  int64 `json:"bytes"`
}

// removeWait is how long Remove waits for a mounted layer to be
// unmounted: a removed sandbox's overlay goes away in the background.
const removeWait = 5 * time.Second

// errInUse marks a layer Remove would delete that is still mounted.
var errInUse = errors.New("in use")

// Remove deletes the name of an image, then the blobs and layers that no
// other image refers to. It refuses (ErrFailedPrecondition) when one of
// those layers stays the lower layer of a mounted overlay for removeWait,
// i.e. while a sandbox runs from it; the host image cannot be removed.
func (s *Store) Remove(name string) error {
	if name == HostImage {
		return fmt.Errorf("%w: the host image is built in", errdefs.ErrFailedPrecondition)
	}
	img, err := s.Get(name)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(removeWait)
	for {
		err := s.remove(img)
		if !errors.Is(err, errInUse) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: image %q is in use by a running sandbox", errdefs.ErrFailedPrecondition, img.Name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Store) remove(img *Image) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	referenced, err := s.referencedLocked(img.Name)
	if err != nil {
		return err
	}
	mounted, err := mountedLowerDirs()
	if err != nil {
		return err
	}
	for _, id := range img.LayerIDs {
		if !referenced[layerKey(id)] && mounted[s.dir("layers", id)] {
			return errInUse
		}
	}
	if err := os.Remove(s.metaPath(img.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, err := s.collectLocked(img.refs(), referenced, mounted); err != nil {
		return err
	}
	return s.writeIndexLocked()
}

// Prune removes every blob and unpacked layer that no image refers to and
// no running sandbox's overlay uses, and staging left by crashed pulls.
func (s *Store) Prune() (PruneReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	referenced, err := s.referencedLocked("")
	if err != nil {
		return PruneReport{}, err
	}
	mounted, err := mountedLowerDirs()
	if err != nil {
		return PruneReport{}, err
	}
	var all []string
	if err := s.blobs.Walk(func(d v1.Hash, _ int64) error {
		all = append(all, blobKey(d.String()))
		return nil
	}); err != nil {
		return PruneReport{}, err
	}
	for _, sub := range []string{"layers", "layerinfo"} {
		entries, err := os.ReadDir(s.dir(sub))
		if err != nil {
			return PruneReport{}, err
		}
		for _, e := range entries {
			if id := strings.TrimSuffix(e.Name(), ".json"); validLayerID(id) {
				all = append(all, layerKey(id))
			}
		}
	}
	rep, err := s.collectLocked(all, referenced, mounted)
	if err != nil {
		return rep, err
	}
	entries, err := os.ReadDir(s.dir("tmp"))
	if err != nil {
		return rep, err
	}
	for _, e := range entries {
		if !s.staging[e.Name()] {
			if err := os.RemoveAll(s.dir("tmp", e.Name())); err != nil {
				return rep, err
			}
		}
	}
	return rep, s.writeIndexLocked()
}

// referencedLocked returns the keys that images other than except, and
// pulls in flight, refer to. The caller holds s.mu.
func (s *Store) referencedLocked(except string) (map[string]bool, error) {
	imgs, err := s.List()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, img := range imgs {
		if img.Name == except {
			continue
		}
		for _, k := range img.refs() {
			out[k] = true
		}
	}
	for k := range s.leases {
		out[k] = true
	}
	return out, nil
}

// collectLocked deletes the candidates that are neither referenced nor
// mounted. A layer is first moved out of layers/ so that a half-deleted
// layer is never visible there. The caller holds s.mu.
func (s *Store) collectLocked(candidates []string, referenced, mounted map[string]bool) (PruneReport, error) {
	var rep PruneReport
	seen := map[string]bool{}
	for _, k := range candidates {
		if referenced[k] || seen[k] {
			continue
		}
		seen[k] = true
		if d, ok := strings.CutPrefix(k, "blob:"); ok {
			h, err := v1.NewHash(d)
			if err != nil {
				continue
			}
			if size, ok := s.blobs.Has(h); ok {
				if err := s.blobs.Delete(h); err != nil {
					return rep, err
				}
				rep.Blobs++
				rep.Bytes += size
			}
			continue
		}
		id := strings.TrimPrefix(k, "layer:")
		dir := s.dir("layers", id)
		if mounted[dir] {
			continue
		}
		if info, err := s.layerInfo(id); err == nil {
			rep.Bytes += info.Size
		}
		trash := s.dir("tmp", "rm-"+id)
		switch err := os.Rename(dir, trash); {
		case err == nil:
			if err := os.RemoveAll(trash); err != nil {
				return rep, err
			}
			rep.Layers++
		case !errors.Is(err, fs.ErrNotExist):
			return rep, err
		}
		if err := os.Remove(s.dir("layerinfo", id+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return rep, err
		}
	}
	return rep, nil
}

// lease marks keys as needed by a pull in flight until the returned
// function is called.
func (s *Store) lease(keys []string) (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		s.leases[k]++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, k := range keys {
			if s.leases[k]--; s.leases[k] <= 0 {
				delete(s.leases, k)
			}
		}
	}
}

// stagingDir makes a directory under tmp/ that Prune leaves alone until
// the returned function removes it.
func (s *Store) stagingDir(prefix string) (string, func(), error) {
	dir, err := os.MkdirTemp(s.dir("tmp"), prefix)
	if err != nil {
		return "", nil, err
	}
	base := filepath.Base(dir)
	s.mu.Lock()
	s.staging[base] = true
	s.mu.Unlock()
	return dir, func() {
		os.RemoveAll(dir)
		s.mu.Lock()
		delete(s.staging, base)
		s.mu.Unlock()
	}, nil
}

// stagingLayer makes an empty directory (mode 0700) in a new staging
// directory, to be filled and renamed into layers/; done removes what is
// left of it.
func (s *Store) stagingLayer(prefix string) (dir string, done func(), err error) {
	staging, done, err := s.stagingDir(prefix)
	if err != nil {
		return "", nil, err
	}
	dir = filepath.Join(staging, "layer")
	if err := os.Mkdir(dir, 0o700); err != nil {
		done()
		return "", nil, err
	}
	return dir, done, nil
}

// mountedLowerDirs returns the lower directories of the overlays mounted
// in this mount namespace.
func mountedLowerDirs() (map[string]bool, error) {
	ms, err := mountinfo.Self()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, m := range ms {
		if m.FSType != "overlay" {
			continue
		}
		for _, opt := range strings.Split(m.SuperOptions, ",") {
			if v, ok := strings.CutPrefix(opt, "lowerdir="); ok {
				for _, l := range strings.Split(v, ":") {
					out[l] = true
				}
			}
		}
	}
	return out, nil
}
