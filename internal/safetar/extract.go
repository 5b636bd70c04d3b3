package safetar

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Defaults for Options' zero values.
const (
	DefaultMaxBytes   = 16 << 30
	DefaultMaxEntries = 1_000_000
)

// errNoFifo is mkfifoat's answer where FIFOs cannot be made (off Linux);
// Extract then skips them as it skips devices.
var errNoFifo = errors.New("safetar: FIFOs cannot be made on this system")

// Options tune Extract. The zero value is usable.
type Options struct {
	// MaxBytes caps the total size of regular files; 0 means
	// DefaultMaxBytes. Exceeding it is errdefs.ErrTooLarge.
	MaxBytes int64
	// MaxEntries caps the number of entries; 0 means DefaultMaxEntries.
	MaxEntries int
	// SameOwner keeps the archive's uid and gid (it needs root) and the
	// setuid, setgid and sticky bits. Otherwise files belong to the caller
	// and only permission bits are kept.
	SameOwner bool
}

// Extract unpacks the tar stream r into dir, which must exist. Nothing is
// ever written outside dir (see the package doc). Directories, regular
// files, symlinks, hard links (to entries inside dir) and FIFOs are
// created; device nodes are skipped. Modes and modification times are
// kept; owners too with SameOwner. An existing file is replaced by an entry
// of the same name; an existing directory is kept and merged into.
//
// An unsafe entry stops extraction with an error wrapping
// errdefs.ErrInvalidArgument; limits give errdefs.ErrTooLarge. Entries
// extracted before an error stay.
func Extract(ctx context.Context, dir string, r io.Reader, opts Options) error {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("extract: open %s: %w", dir, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	x := &extractor{root: root, opts: opts, dirs: map[string]*tar.Header{}}
	defer x.close()
	tr := tar.NewReader(r)
	for entries := 0; ; entries++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("extract: %w: reading archive: %v", errdefs.ErrInvalidArgument, err)
		}
		if entries >= opts.MaxEntries {
			return fmt.Errorf("extract: %w: more than %d entries", errdefs.ErrTooLarge, opts.MaxEntries)
		}
		if err := x.entry(ctx, hdr, tr); err != nil {
			return fmt.Errorf("extract %.200q: %w", hdr.Name, err)
		}
	}
	return x.finishDirs()
}

// extractor holds the state of one Extract call.
type extractor struct {
	root  int
	opts  Options
	total int64                  // bytes of regular files so far
	dirs  map[string]*tar.Header // directories whose mode and times are set last

	cacheRel string // the last parent opened, kept open for the next entry
	cacheFD  int
	cached   bool
}

func (x *extractor) close() {
	x.dropCache()
	unix.Close(x.root)
}

func (x *extractor) dropCache() {
	if x.cached {
		unix.Close(x.cacheFD)
		x.cached = false
	}
}

// parent opens (creating if needed) the parent directory of rel and returns
// its fd (owned by the cache: do not close) and rel's last component.
func (x *extractor) parent(rel string) (int, string, error) {
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if x.cached && x.cacheRel == dir {
		return x.cacheFD, base, nil
	}
	x.dropCache()
	fd, err := openDir(x.root, dir, true)
	if err != nil {
		return -1, "", err
	}
	x.cacheRel, x.cacheFD, x.cached = dir, fd, true
	return fd, base, nil
}

func (x *extractor) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	rel, err := CleanName(hdr.Name)
	if err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if rel == "" {
			return nil // the extraction directory itself
		}
		return x.dir(rel, hdr)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont:
		return x.file(ctx, rel, hdr, r)
	case tar.TypeSymlink:
		return x.symlink(rel, hdr)
	case tar.TypeLink:
		return x.hardlink(rel, hdr)
	case tar.TypeFifo:
		return x.fifo(rel, hdr)
	}
	return nil // devices and unknown types are skipped
}

func (x *extractor) dir(rel string, hdr *tar.Header) error {
	// Directories below rel may be re-opened by later entries; the cache
	// may hold rel's old fd only if rel is its exact path, which mkdir
	// does not change.
	pfd, base, err := x.parent(rel)
	if err != nil {
		return err
	}
	err = unix.Mkdirat(pfd, base, 0o700)
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err = unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if err = unix.Unlinkat(pfd, base, 0); err == nil {
				err = unix.Mkdirat(pfd, base, 0o700)
			}
		}
	}
	if err != nil {
		return err
	}
	x.dirs[rel] = hdr
	return nil
}

// replace removes a non-directory at base so that an entry can take its
// place; a directory there is an error.
func replace(pfd int, base string) error {
	err := unix.Unlinkat(pfd, base, 0)
	switch err {
	case nil, unix.ENOENT:
		return nil
	case unix.EISDIR, unix.EPERM:
		return fmt.Errorf("%w: a directory is in the way", errdefs.ErrFailedPrecondition)
	}
	return err
}

func (x *extractor) file(ctx context.Context, rel string, hdr *tar.Header, r io.Reader) error {
	if rel == "" {
		return fmt.Errorf("%w: a file entry names the extraction directory", errdefs.ErrInvalidArgument)
	}
	if hdr.Size < 0 || hdr.Size > x.opts.MaxBytes-x.total {
		return fmt.Errorf("%w: archive exceeds %d bytes", errdefs.ErrTooLarge, x.opts.MaxBytes)
	}
	x.total += hdr.Size
	pfd, base, err := x.parent(rel)
	if err != nil {
		return err
	}
	if err := replace(pfd, base); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	cr := &ctxReader{ctx: ctx, r: r}
	n, err := io.Copy(f, cr)
	if cr.readErr != nil && ctx.Err() == nil {
		return fmt.Errorf("%w: reading archive: %v", errdefs.ErrInvalidArgument, cr.readErr)
	}
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("%w: entry holds %d of %d bytes", errdefs.ErrInvalidArgument, n, hdr.Size)
	}
	if x.opts.SameOwner {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(fd, x.mode(hdr)); err != nil {
		return err
	}
	if err := unix.Futimes(fd, timevals(hdr)); err != nil {
		return err
	}
	return f.Close()
}

func (x *extractor) symlink(rel string, hdr *tar.Header) error {
	if rel == "" {
		return fmt.Errorf("%w: a symlink entry names the extraction directory", errdefs.ErrInvalidArgument)
	}
	if hdr.Linkname == "" || len(hdr.Linkname) > maxNameBytes || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return fmt.Errorf("%w: bad symlink target %.60q", errdefs.ErrInvalidArgument, hdr.Linkname)
	}
	pfd, base, err := x.parent(rel)
	if err != nil {
		return err
	}
	if err := replace(pfd, base); err != nil {
		return err
	}
	if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
		return err
	}
	if x.opts.SameOwner {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	tv := timevals(hdr)
	ts := []unix.Timespec{timespec(tv[0]), timespec(tv[1])}
	return unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func (x *extractor) hardlink(rel string, hdr *tar.Header) error {
	target, err := CleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if rel == "" || target == "" {
		return fmt.Errorf("%w: hard link to or at the extraction directory", errdefs.ErrInvalidArgument)
	}
	if target == rel {
		return nil
	}
	tdir, tbase := path.Split(target)
	tfd, err := openDir(x.root, strings.TrimSuffix(tdir, "/"), false)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	defer unix.Close(tfd)
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("hard link target %.60q: %w", target, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%w: hard link to a directory", errdefs.ErrInvalidArgument)
	}
	pfd, base, err := x.parent(rel)
	if err != nil {
		return err
	}
	if err := replace(pfd, base); err != nil {
		return err
	}
	return unix.Linkat(tfd, tbase, pfd, base, 0) // 0: a symlink target is linked, not followed
}

func (x *extractor) fifo(rel string, hdr *tar.Header) error {
	if rel == "" {
		return fmt.Errorf("%w: a fifo entry names the extraction directory", errdefs.ErrInvalidArgument)
	}
	pfd, base, err := x.parent(rel)
	if err != nil {
		return err
	}
	if err := replace(pfd, base); err != nil {
		return err
	}
	if err := mkfifoat(pfd, base); err != nil {
		if errors.Is(err, errNoFifo) {
			return nil // skipped, as devices are
		}
		return err
	}
	if x.opts.SameOwner {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return unix.Fchmodat(pfd, base, x.mode(hdr)&0o777, 0)
}

// finishDirs sets the mode, owner and times of directories, deepest first,
// so that a read-only directory does not stop its own extraction.
func (x *extractor) finishDirs() error {
	x.dropCache()
	rels := make([]string, 0, len(x.dirs))
	for rel := range x.dirs {
		rels = append(rels, rel)
	}
	sort.Slice(rels, func(i, j int) bool { return strings.Count(rels[i], "/") > strings.Count(rels[j], "/") })
	for _, rel := range rels {
		hdr := x.dirs[rel]
		fd, err := openDir(x.root, rel, false)
		if err != nil {
			return fmt.Errorf("extract %.200q: %w", rel, err)
		}
		err = x.finishDir(fd, hdr)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("extract %.200q: %w", rel, err)
		}
	}
	return nil
}

func (x *extractor) finishDir(fd int, hdr *tar.Header) error {
	if x.opts.SameOwner {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if err := unix.Fchmod(fd, x.mode(hdr)); err != nil {
		return err
	}
	return unix.Futimes(fd, timevals(hdr))
}

// mode is the entry's mode as chmod bits; special bits only with SameOwner.
func (x *extractor) mode(hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode) & 0o777
	if x.opts.SameOwner {
		m |= uint32(hdr.Mode) & (unix.S_ISUID | unix.S_ISGID | unix.S_ISVTX)
	}
	return m
}

// timevals returns the entry's access and modification times, clamped to
// what the kernel takes (the Unix epoch up to the year 9999).
func timevals(hdr *tar.Header) []unix.Timeval {
	tv := func(t time.Time) unix.Timeval {
		v := unix.NsecToTimeval(int64(t.Nanosecond())) // Usec's type varies by OS
		v.Sec = min(max(t.Unix(), 0), 253402300799)
		return v
	}
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	return []unix.Timeval{tv(at), tv(hdr.ModTime)}
}

// timespec is tv as a Timespec.
func timespec(tv unix.Timeval) unix.Timespec {
	ts := unix.NsecToTimespec(int64(tv.Usec) * 1000)
	ts.Sec = tv.Sec
	return ts
}

// ctxReader stops a copy when ctx ends and remembers a read error, so
// that a copy's caller can tell reading from writing failures.
type ctxReader struct {
	ctx     context.Context
	r       io.Reader
	readErr error
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		c.readErr = err
	}
	return n, err
}
