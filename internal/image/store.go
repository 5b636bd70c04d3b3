package image

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/internal/image/content"
	"github.com/agentkernel/agentkernel/internal/keyedmutex"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// HostImage is the name of the built-in read-only host view.
const HostImage = "host"

// Default ID shift: the same range internal/oci maps sandbox root to.
const (
	DefaultShift     = 100000
	DefaultShiftSize = 65536
	maxMetaBytes     = 1 << 20
	maxImages        = 10000
)

// Image is one root filesystem a sandbox can start from.
type Image struct {
	Name string `json:"name"`
	ID   string `json:"id"`
	// Host marks the built-in host view; it has no layers (see HostView).
	Host bool `json:"host,omitempty"`
	// LayerIDs name the layers under the store's layers/, lowest first:
	// a pulled layer's diff-id hex, an imported layer's random id.
	LayerIDs []string `json:"layers"`
	// Layers are the absolute layer directories, lowest first; filled in
	// by the store when it loads the image.
	Layers  []string  `json:"-"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
	// Source is the path it was imported from, or the full reference it
	// was pulled from.
	Source string `json:"source,omitempty"`

	// Pulled images only.
	Manifest *Blob `json:"manifest,omitempty"`
	// ConfigBlob is the image config; LayerBlobs are the compressed
	// layers, in LayerIDs' order.
	ConfigBlob *Blob   `json:"config_blob,omitempty"`
	LayerBlobs []Blob  `json:"layer_blobs,omitempty"`
	Platform   string  `json:"platform,omitempty"`
	Config     *Config `json:"config,omitempty"`
}

// Blob describes one stored blob.
type Blob struct {
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	MediaType string `json:"media_type,omitempty"`
}

// Config is the part of an OCI image config that sandboxes use.
type Config struct {
	Env          []string          `json:"env,omitempty"`
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	WorkingDir   string            `json:"working_dir,omitempty"`
	User         string            `json:"user,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	ExposedPorts []string          `json:"exposed_ports,omitempty"`
	// Created is when the image was built, as its config says.
	Created time.Time `json:"created,omitempty"`
}

// Options configure a Store; zero values take the defaults.
type Options struct {
	// Shift is applied to file owners on import; default
	// DefaultShift/DefaultShift/DefaultShiftSize.
	Shift IDShift
	// Limits bound each import.
	Limits Limits
}

// Store keeps images under one root directory. See the package doc for its
// layout and for who may write to it. Its methods are safe for concurrent
// use; mu serialises writers in this process.
type Store struct {
	root   string
	shift  IDShift
	limits Limits
	blobs  *content.Store

	// mu serialises changes to images/, index.json and the removal of
	// blobs and layers; it is never held while downloading or unpacking.
	mu sync.Mutex
	// leases count, per blob ("blob:<digest>") and layer ("layer:<id>"),
	// the pulls in flight that need it; garbage collection keeps them.
	// staging holds the names under tmp/ that pulls in flight own.
	leases  map[string]int
	staging map[string]bool
	// layerLocks serialise the download and unpacking of one layer.
	layerLocks keyedmutex.Mutex
	// etcMu serialises building the host /etc copy.
	etcMu sync.Mutex
}

var nameRE = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$`)

// ValidateName checks an image name: lowercase path components of
// [a-z0-9._-] separated by "/", an optional ":tag", at most 255 bytes.
func ValidateName(name string) error {
	if len(name) > 255 || !nameRE.MatchString(name) {
		return fmt.Errorf("%w: image name %q must look like name[/name...][:tag] in lowercase letters, digits and ._-",
			errdefs.ErrInvalidArgument, name)
	}
	return nil
}

// Open opens (creating if needed) the store under root.
func Open(root string, opts Options) (*Store, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("%w: image store root %q must be absolute", errdefs.ErrInvalidArgument, root)
	}
	if opts.Shift == (IDShift{}) {
		opts.Shift = IDShift{UID: DefaultShift, GID: DefaultShift, Size: DefaultShiftSize}
	}
	if opts.Shift.Size == 0 {
		return nil, fmt.Errorf("%w: id shift of size 0", errdefs.ErrInvalidArgument)
	}
	s := &Store{root: filepath.Clean(root), shift: opts.Shift, limits: opts.Limits,
		leases: map[string]int{}, staging: map[string]bool{}}
	for _, d := range []string{s.root, s.dir("images"), s.dir("layers"), s.dir("layerinfo"), s.dir("host"), s.dir("tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating image store: %w", err)
		}
	}
	blobs, err := content.Open(s.root, s.dir("tmp"))
	if err != nil {
		return nil, err
	}
	s.blobs = blobs
	return s, nil
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

// LayerDir is the directory of the unpacked layer id (see Image.LayerIDs).
func (s *Store) LayerDir(id string) string { return s.dir("layers", id) }

// LayerID returns the id of the unpacked layer at dir, as Image.Layers
// lists it, or an error classed errdefs.ErrNotFound when dir is not a layer
// of this store.
func (s *Store) LayerID(dir string) (string, error) {
	if filepath.Dir(dir) != s.dir("layers") {
		return "", fmt.Errorf("%w: %s is not a layer of the image store", errdefs.ErrNotFound, dir)
	}
	return filepath.Base(dir), nil
}

func (s *Store) dir(parts ...string) string {
	return filepath.Join(append([]string{s.root}, parts...)...)
}

func metaKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

func (s *Store) metaPath(name string) string {
	return s.dir("images", metaKey(name)+".json")
}

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b[:])
}

// hostImage is the built-in image's metadata.
func hostImage() *Image {
	return &Image{Name: HostImage, ID: "host", Host: true, Source: "/"}
}

// Get returns the image called name, or an ErrNotFound.
func (s *Store) Get(name string) (*Image, error) {
	if name == HostImage {
		return hostImage(), nil
	}
	if len(name) > 512 {
		return nil, fmt.Errorf("%w: image name of %d bytes", errdefs.ErrInvalidArgument, len(name))
	}
	for _, n := range lookupNames(name) {
		img, err := s.load(s.metaPath(n))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if img.Name != n {
			return nil, fmt.Errorf("image %q: metadata names %q", n, img.Name)
		}
		return img, nil
	}
	return nil, fmt.Errorf("%w: no image %q in the store (pull it with `agentkernel image pull %s`)", errdefs.ErrNotFound, name, name)
}

// load reads one metadata file and resolves its layers.
func (s *Store) load(p string) (*Image, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var img Image
	dec := json.NewDecoder(io.LimitReader(bufio.NewReader(f), maxMetaBytes))
	if err := dec.Decode(&img); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", p, err)
	}
	if err := validStoredName(img.Name); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	for _, id := range img.LayerIDs {
		if !validLayerID(id) {
			return nil, fmt.Errorf("%s: bad layer id %q", p, id)
		}
		img.Layers = append(img.Layers, s.dir("layers", id))
	}
	return &img, nil
}

var layerIDRE = regexp.MustCompile(`^[0-9a-f]{32,64}$`)

func validLayerID(id string) bool { return layerIDRE.MatchString(id) }

// List returns every image, the host image first, then by name.
func (s *Store) List() ([]*Image, error) {
	entries, err := os.ReadDir(s.dir("images"))
	if err != nil {
		return nil, err
	}
	if len(entries) > maxImages {
		entries = entries[:maxImages]
	}
	out := []*Image{hostImage()}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		img, err := s.load(s.dir("images", e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	slices.SortFunc(out[1:], func(a, b *Image) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Import copies src (a directory, or a tar or tar.gz file) into the store as
// a one-layer image called name, shifting file owners into the mapped range.
// It fails with ErrAlreadyExists if the name is taken; a failed import
// leaves nothing behind.
func (s *Store) Import(ctx context.Context, name, src string) (*Image, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if name == HostImage {
		return nil, fmt.Errorf("%w: %q is the built-in host image", errdefs.ErrAlreadyExists, name)
	}
	if !filepath.IsAbs(src) {
		return nil, fmt.Errorf("%w: import source %q must be an absolute path", errdefs.ErrInvalidArgument, src)
	}
	resolved, err := filepath.EvalSymlinks(src)
	if err != nil {
		return nil, fmt.Errorf("%w: import source %s: %v", errdefs.ErrNotFound, src, err)
	}
	if _, err := os.Stat(s.metaPath(name)); err == nil {
		return nil, fmt.Errorf("%w: image %q", errdefs.ErrAlreadyExists, name)
	}

	staging, err := os.MkdirTemp(s.dir("tmp"), "import-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(staging)
	layerDir := filepath.Join(staging, "layer")
	if err := os.Mkdir(layerDir, 0o755); err != nil {
		return nil, err
	}
	size, err := importInto(ctx, resolved, layerDir, s.shift, s.limits)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", src, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.metaPath(name)); err == nil {
		return nil, fmt.Errorf("%w: image %q", errdefs.ErrAlreadyExists, name)
	}
	id := randomID()
	final := s.dir("layers", id)
	if err := os.Rename(layerDir, final); err != nil {
		return nil, fmt.Errorf("publishing layer: %w", err)
	}
	img := &Image{Name: name, ID: id, LayerIDs: []string{id}, Layers: []string{final},
		Size: size, Created: time.Now().UTC(), Source: src}
	if err := writeJSON(s.metaPath(name), img); err != nil {
		os.RemoveAll(final)
		return nil, err
	}
	return img, nil
}

// writeJSON writes v to p atomically (temp file, fsync, rename), 0600.
func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return os.Rename(f.Name(), p)
}
