// Package layerdiff turns the upper directory of a sandbox's overlay mount
// (its copy-on-write layer) into an OCI layer tar stream, the inverse of
// internal/image/unpack:
//
//   - an overlay whiteout (a character device 0/0 called NAME) becomes an
//     empty ".wh.NAME" entry;
//   - a directory with trusted.overlay.opaque=y gets a ".wh..wh..opq"
//     entry inside it, after its own entry;
//   - owners are shifted back out of the sandboxes' mapped range (host
//     uid Shift.UID+u becomes u); an owner outside the range fails;
//   - regular files with several links inside the directory become one
//     file and hard links to it;
//   - user.* and security.capability xattrs are kept as PAX records (a v3
//     capability's root id is shifted back); other xattrs are dropped;
//   - overlayfs metadata that cannot be represented (redirect_dir renames,
//     metacopy files) fails the conversion rather than losing data;
//   - sockets and other device nodes are left out.
//
// The upper directory is written by untrusted code: it is walked without
// following symlinks and files are opened through an os.Root, so nothing
// outside it is ever read. It should not change during the walk (the
// sandbox is stopped, or the caller accepts a fuzzy snapshot).
package layerdiff

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// IDShift is the host range sandbox ids 0..Size-1 are mapped to.
type IDShift struct {
	UID  uint32
	GID  uint32
	Size uint32
}

// Options configure Write.
type Options struct {
	Shift IDShift
	// Exclude lists paths relative to the upper directory ("a/b") left
	// out with everything below them.
	Exclude []string
	// MaxBytes and MaxEntries bound the layer (0: 16 GiB, 1,000,000).
	MaxBytes   int64
	MaxEntries int
}

// Stats count what Write produced.
type Stats struct {
	Entries    int
	Bytes      int64 // regular-file content
	Whiteouts  int
	OpaqueDirs int
	Hardlinks  int
	Skipped    int // sockets and device nodes left out
}

// Whiteout names (OCI image spec, "Representing Changes").
const (
	whPrefix     = ".wh."
	whOpaque     = ".wh..wh..opq"
	opaqueXattr  = "trusted.overlay.opaque"
	maxXattrSize = 64 << 10
)

type inode struct{ dev, ino uint64 }

// Write writes upper's content as an uncompressed OCI layer tar to w.
func Write(ctx context.Context, w io.Writer, upper string, opts Options) (Stats, error) {
	if opts.Shift.Size == 0 {
		return Stats{}, fmt.Errorf("%w: id shift of size 0", errdefs.ErrInvalidArgument)
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 16 << 30
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 1_000_000
	}
	root, err := os.OpenRoot(upper)
	if err != nil {
		return Stats{}, fmt.Errorf("opening the upper directory: %w", err)
	}
	defer root.Close()
	d := &differ{ctx: ctx, upper: upper, root: root, opts: opts, tw: tar.NewWriter(w), links: map[inode]string{}}
	if err := filepath.WalkDir(upper, d.visit); err != nil {
		return d.stats, err
	}
	if err := d.tw.Close(); err != nil {
		return d.stats, err
	}
	return d.stats, nil
}

// differ is the state of one Write; used by one goroutine.
type differ struct {
	ctx   context.Context
	upper string
	root  *os.Root
	opts  Options
	tw    *tar.Writer
	links map[inode]string // first name of each multiply-linked file
	stats Stats
}

func (d *differ) visit(p string, e fs.DirEntry, err error) error {
	if err != nil {
		return err
	}
	if err := d.ctx.Err(); err != nil {
		return err
	}
	if p == d.upper {
		return nil
	}
	rel, err := filepath.Rel(d.upper, p)
	if err != nil {
		return err
	}
	rel = filepath.ToSlash(rel)
	for _, x := range d.opts.Exclude {
		if rel == x {
			if e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
	}
	fi, err := e.Info()
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no stat information", rel)
	}
	if d.stats.Entries++; d.stats.Entries > d.opts.MaxEntries {
		return fmt.Errorf("%w: more than %d entries", errdefs.ErrTooLarge, d.opts.MaxEntries)
	}
	mode := fi.Mode()
	if mode&fs.ModeCharDevice != 0 && st.Rdev == 0 {
		d.stats.Whiteouts++
		return d.writeEmpty(path.Join(path.Dir(rel), whPrefix+path.Base(rel)), fi)
	}
	if mode&(fs.ModeDevice|fs.ModeSocket|fs.ModeCharDevice) != 0 {
		d.stats.Skipped++
		return nil
	}
	h := &tar.Header{Name: rel, Mode: int64(fi.Mode().Perm()), ModTime: fi.ModTime(), Format: tar.FormatPAX}
	if mode&fs.ModeSetuid != 0 {
		h.Mode |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		h.Mode |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		h.Mode |= 0o1000
	}
	if h.Uid, h.Gid, err = d.unshift(rel, st.Uid, st.Gid); err != nil {
		return err
	}
	xattrs, opaque, err := d.xattrs(p, rel)
	if err != nil {
		return err
	}
	for k, v := range xattrs {
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+k] = v
	}
	switch {
	case mode.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, rel+"/"
	case mode&fs.ModeSymlink != 0:
		h.Typeflag = tar.TypeSymlink
		if h.Linkname, err = os.Readlink(p); err != nil {
			return err
		}
	case mode&fs.ModeNamedPipe != 0:
		h.Typeflag = tar.TypeFifo
	case mode.IsRegular():
		return d.writeFile(h, rel, st)
	default:
		d.stats.Skipped++
		return nil
	}
	if err := d.tw.WriteHeader(h); err != nil {
		return err
	}
	if opaque {
		d.stats.OpaqueDirs++
		return d.writeEmpty(path.Join(rel, whOpaque), fi)
	}
	return nil
}

// writeFile writes a regular file, or a hard link to its first name.
func (d *differ) writeFile(h *tar.Header, rel string, st *syscall.Stat_t) error {
	if st.Nlink > 1 {
		key := inode{uint64(st.Dev), st.Ino}
		if first, ok := d.links[key]; ok {
			h.Typeflag, h.Linkname = tar.TypeLink, first
			d.stats.Hardlinks++
			return d.tw.WriteHeader(h)
		}
		d.links[key] = rel
	}
	f, err := d.root.Open(rel)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fst, ok := fi.Sys().(*syscall.Stat_t); !ok || !fi.Mode().IsRegular() || fst.Ino != st.Ino {
		return fmt.Errorf("%w: %s changed during the diff", errdefs.ErrFailedPrecondition, rel)
	}
	h.Typeflag, h.Size = tar.TypeReg, fi.Size()
	if d.stats.Bytes += h.Size; d.stats.Bytes > d.opts.MaxBytes {
		return fmt.Errorf("%w: more than %d bytes of files", errdefs.ErrTooLarge, d.opts.MaxBytes)
	}
	if err := d.tw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := io.Copy(d.tw, io.LimitReader(f, h.Size)); err != nil {
		if errors.Is(err, tar.ErrWriteTooLong) {
			return fmt.Errorf("%w: %s grew during the diff", errdefs.ErrFailedPrecondition, rel)
		}
		return err
	}
	return nil
}

// writeEmpty writes a whiteout marker: an empty file owned by root.
func (d *differ) writeEmpty(name string, fi fs.FileInfo) error {
	return d.tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, ModTime: fi.ModTime(), Format: tar.FormatPAX})
}

func (d *differ) unshift(rel string, uid, gid uint32) (int, int, error) {
	s := d.opts.Shift
	if uid < s.UID || uid-s.UID >= s.Size || gid < s.GID || gid-s.GID >= s.Size {
		return 0, 0, fmt.Errorf("%w: %s is owned by host %d:%d, outside the sandbox's mapped range", errdefs.ErrInvalidArgument, rel, uid, gid)
	}
	return int(uid - s.UID), int(gid - s.GID), nil
}

// xattrs returns the xattrs kept for p, and whether it is an opaque
// directory. Overlay metadata that changes what p means fails.
func (d *differ) xattrs(p, rel string) (map[string]string, bool, error) {
	names, err := listXattrs(p)
	if err != nil {
		return nil, false, fmt.Errorf("%s: listing xattrs: %w", rel, err)
	}
	var out map[string]string
	opaque := false
	for _, n := range names {
		switch {
		case n == opaqueXattr:
			v, err := getXattr(p, n)
			if err != nil {
				return nil, false, err
			}
			opaque = v == "y"
		case n == "trusted.overlay.redirect" || n == "trusted.overlay.metacopy":
			return nil, false, fmt.Errorf("%w: %s carries %s (overlayfs redirect_dir or metacopy), which a layer cannot represent",
				errdefs.ErrNotImplemented, rel, n)
		case strings.HasPrefix(n, "user.") || n == "security.capability":
			v, err := getXattr(p, n)
			if err != nil {
				return nil, false, err
			}
			if n == "security.capability" {
				var ok bool
				if v, ok = d.unshiftCap(v); !ok {
					continue
				}
			}
			if out == nil {
				out = map[string]string{}
			}
			out[n] = v
		}
	}
	return out, opaque, nil
}

// unshiftCap shifts a v3 file capability's root id back; v1 and v2 are
// kept as they are.
func (d *differ) unshiftCap(v string) (string, bool) {
	switch len(v) {
	case 12, 20:
		return v, true
	case 24:
		b := []byte(v)
		id := binary.LittleEndian.Uint32(b[20:])
		if id < d.opts.Shift.UID || id-d.opts.Shift.UID >= d.opts.Shift.Size {
			return "", false
		}
		binary.LittleEndian.PutUint32(b[20:], id-d.opts.Shift.UID)
		return string(b), true
	}
	return "", false
}

func listXattrs(p string) ([]string, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) && len(buf) < 1<<20 {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(p, name string) (string, error) {
	buf := make([]byte, maxXattrSize)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", fmt.Errorf("reading xattr %s of %s: %w", name, p, err)
	}
	return string(buf[:n]), nil
}
