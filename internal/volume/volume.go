// Package volume keeps named volumes: persistent, size-limited filesystems
// that outlive the sandboxes they are mounted in (issue 14, item 4).
//
// A volume NAME is the directory DIR/NAME (DIR is home/volumes) holding
// disk.img, a sparse ext4 image of the volume's size made with mkfs.ext4
// (no reserved blocks, so the sandbox gets all of it: writing past it is
// ENOSPC), and volume.json, its metadata. The metadata lives beside the
// image rather than in the daemon's SQLite store so that a volume is one
// directory that is created (in a temporary directory, renamed into place)
// and deleted as a whole, and needs no migration. Files on the image keep
// the ids the sandbox sees (root is 0), so the same volume reads the same
// in a microVM (which attaches the image as a drive) and in a container
// (which gets an idmapped view of a host mount; see internal/loopfs).
//
// Names are validated like sandbox names and are never paths.
package volume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Sizes. DefaultSize is what `volume create` gives without --size
// (upstream's volumes have no limit; an image needs one, and it is sparse,
// so a large default costs only what is written).
const (
	DefaultSize = 1 << 30
	MinSize     = 8 << 20
	MaxSize     = 1 << 40
)

// Files of a volume's directory.
const (
	DiskFile = "disk.img"
	metaFile = "volume.json"
)

// Info describes a volume.
type Info struct {
	Name      string    `json:"name"`
	SizeBytes int64     `json:"size_bytes"`
	CreatedAt time.Time `json:"created_at"`
	// GuestWritten says a microVM has had the image read-write: its guest
	// kernel wrote the disk's blocks directly, so the image is no longer
	// one the host kernel may parse (see SetGuestWritten).
	GuestWritten bool `json:"guest_written,omitempty"`
	// Disk is the image's path on the daemon's host.
	Disk string `json:"disk,omitempty"`
}

// ValidateName checks a volume name: upstream's slug (letters, digits,
// '-', '_'), starting with a letter or digit, at most 63 characters
// (api.ValidateVolumeName, shared with the client).
func ValidateName(name string) error { return api.ValidateVolumeName(name) }

// ParseSize reads a size as upstream writes it: a number with an optional
// B, K/KB, M/MB, G/GB or T/TB suffix (powers of 1024, any case).
func ParseSize(s string) (int64, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(u, suf.s) {
			u, mult = strings.TrimSpace(strings.TrimSuffix(u, suf.s)), suf.m
			break
		}
	}
	f, err := strconv.ParseFloat(u, 64)
	if err != nil || f <= 0 || f*float64(mult) > MaxSize {
		return 0, fmt.Errorf("%w: volume size %.40q: want a positive size up to 1TB, such as 512MB or 2GB", errdefs.ErrInvalidArgument, s)
	}
	n := int64(f * float64(mult))
	if n < MinSize {
		return 0, fmt.Errorf("%w: volume size %.40q is below the 8MB minimum", errdefs.ErrInvalidArgument, s)
	}
	return n, nil
}

// Mount is one use of a volume by a sandbox, as written in
// `-v NAME:/path[:ro|:rw|:shared]` and the create body's volumes.
type Mount struct {
	Name     string `json:"name"`
	Path     string `json:"path"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Shared asks for read-write use beside other sandboxes' shared or
	// read-only uses (possible where the host mounts the volume once).
	Shared bool `json:"shared,omitempty"`
}

// ParseMount parses "NAME:/path[:ro|:rw|:shared]". The path must be
// absolute, clean (no "..", no "//", no trailing "/"), not "/" and not
// under /proc, /sys, /dev or the agent's directory
// (backend.CheckMountTarget).
func ParseMount(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Mount{}, fmt.Errorf("%w: volume %.120q: want NAME:/PATH[:ro]", errdefs.ErrInvalidArgument, s)
	}
	m := Mount{Name: parts[0], Path: parts[1]}
	if err := ValidateName(m.Name); err != nil {
		return Mount{}, err
	}
	if !filepath.IsAbs(m.Path) || filepath.Clean(m.Path) != m.Path || m.Path == "/" || len(m.Path) > 4096 || strings.ContainsRune(m.Path, 0) {
		return Mount{}, fmt.Errorf("%w: volume %.120q: the sandbox path must be absolute, clean and not /", errdefs.ErrInvalidArgument, s)
	}
	if err := backend.CheckMountTarget(m.Path); err != nil {
		return Mount{}, fmt.Errorf("volume %.120q: %w", s, err)
	}
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		case "shared":
			m.Shared = true
		default:
			return Mount{}, fmt.Errorf("%w: volume %.120q: the third field must be ro, rw or shared", errdefs.ErrInvalidArgument, s)
		}
	}
	return m, nil
}

// Store keeps the volumes under one directory.
type Store struct {
	Dir string
}

func (s *Store) dir(name string) string { return filepath.Join(s.Dir, name) }

// Disk is the path of a volume's image (the volume need not exist).
func (s *Store) Disk(name string) string { return filepath.Join(s.dir(name), DiskFile) }

// Create makes a volume of size bytes (DefaultSize when 0).
func (s *Store) Create(ctx context.Context, name string, size int64) (Info, error) {
	if err := ValidateName(name); err != nil {
		return Info{}, err
	}
	if size == 0 {
		size = DefaultSize
	}
	if size < MinSize || size > MaxSize {
		return Info{}, fmt.Errorf("%w: volume size %d bytes: must be 8MB to 1TB", errdefs.ErrInvalidArgument, size)
	}
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return Info{}, err
	}
	if _, err := os.Lstat(s.dir(name)); err == nil {
		return Info{}, fmt.Errorf("%w: volume %q already exists", errdefs.ErrAlreadyExists, name)
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return Info{}, fmt.Errorf("%w: mkfs.ext4 not found (apt-get install e2fsprogs, or run scripts/setup.sh)", errdefs.ErrFailedPrecondition)
	}
	tmp, err := os.MkdirTemp(s.Dir, ".create-")
	if err != nil {
		return Info{}, err
	}
	defer os.RemoveAll(tmp)
	img := filepath.Join(tmp, DiskFile)
	f, err := os.OpenFile(img, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return Info{}, err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Info{}, fmt.Errorf("volume %q: %w", name, err)
	}
	// -m 0: no blocks reserved for root; root_owner 0:0 and 0755 as the
	// sandbox sees it; lazy init off so the size is what df says at once.
	cmd := exec.CommandContext(ctx, mkfs, "-q", "-F", "-m", "0", "-L", "ak-vol",
		"-E", "root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0", img)
	if out, err := cmd.CombinedOutput(); err != nil {
		return Info{}, fmt.Errorf("volume %q: mkfs.ext4: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	info := Info{Name: name, SizeBytes: size, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	b, _ := json.Marshal(info)
	if err := os.WriteFile(filepath.Join(tmp, metaFile), b, 0o600); err != nil {
		return Info{}, err
	}
	if err := os.Rename(tmp, s.dir(name)); err != nil {
		if errors.Is(err, os.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return Info{}, fmt.Errorf("%w: volume %q already exists", errdefs.ErrAlreadyExists, name)
		}
		return Info{}, err
	}
	info.Disk = s.Disk(name)
	return info, nil
}

// Get describes a volume.
func (s *Store) Get(name string) (Info, error) {
	if err := ValidateName(name); err != nil {
		return Info{}, err
	}
	b, err := os.ReadFile(filepath.Join(s.dir(name), metaFile))
	if errors.Is(err, os.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: no volume named %q (create it with `agentkernel volume create %s`)", errdefs.ErrNotFound, name, name)
	}
	if err != nil {
		return Info{}, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil || info.Name != name {
		return Info{}, fmt.Errorf("volume %q: unreadable %s: %v", name, metaFile, err)
	}
	fi, err := os.Lstat(s.Disk(name))
	if err != nil || !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("volume %q: its disk image is missing or not a regular file: %v", name, err)
	}
	info.Disk = s.Disk(name)
	return info, nil
}

// SetGuestWritten records that a microVM is given the volume read-write.
// From then on only microVMs may mount it: a guest that controls the raw
// blocks of an ext4 image can craft one that attacks the filesystem code
// of whichever kernel mounts it next, and the host's must not be that
// kernel. Idempotent.
func (s *Store) SetGuestWritten(name string) error {
	info, err := s.Get(name)
	if err != nil || info.GuestWritten {
		return err
	}
	info.GuestWritten, info.Disk = true, ""
	b, _ := json.Marshal(info)
	tmp := filepath.Join(s.dir(name), "."+metaFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(s.dir(name), metaFile))
}

// List describes every volume, by name.
func (s *Store) List() ([]Info, error) {
	ents, err := os.ReadDir(s.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range ents {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue // .create-* in progress, or not ours
		}
		if info, err := s.Get(e.Name()); err == nil {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes a volume and its data. The caller checks that no sandbox
// uses it.
func (s *Store) Delete(name string) error {
	if _, err := s.Get(name); err != nil {
		return err
	}
	// Renamed away first, so that a half-done removal is not a volume.
	gone := filepath.Join(s.Dir, ".delete-"+name+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Rename(s.dir(name), gone); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}
