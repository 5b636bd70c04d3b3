package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/agentkernel/agentkernel/internal/safetar"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// IDShift maps file owners of an imported image into the host range that
// sandboxes' user namespaces map to: owner u becomes UID+u. Owners at or
// above Size cannot be represented and make the import fail.
type IDShift struct {
	UID  uint32
	GID  uint32
	Size uint32
}

// Limits bound one import. Zero fields take safetar's defaults (16 GiB,
// 1,000,000 entries).
type Limits struct {
	MaxBytes   int64 // total regular-file bytes
	MaxEntries int   // entries
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = safetar.DefaultMaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = safetar.DefaultMaxEntries
	}
	return l
}

// importInto fills layerDir (an empty directory) from src: a directory, or
// a file holding a tar or tar.gz stream. It returns the bytes of regular
// files written.
//
// Both sources become one tar stream that passes through shiftStream, which
// checks and shifts every owner, and is extracted by safetar.Extract with
// SameOwner, which refuses "..", absolute names and writes through
// symlinks. A directory is read by safetar.Write, which never follows
// symlinks either.
func importInto(ctx context.Context, src, layerDir string, shift IDShift, limits Limits) (int64, error) {
	fi, err := os.Stat(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("%w: import source %s does not exist", errdefs.ErrNotFound, src)
		}
		return 0, fmt.Errorf("import source: %w", err)
	}
	limits = limits.withDefaults()
	var r io.Reader
	strip := ""
	switch {
	case fi.IsDir():
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(safetar.Write(ctx, pw, src)) }()
		defer pr.Close()
		r, strip = pr, filepath.Base(src)
	case fi.Mode().IsRegular():
		f, err := os.Open(src)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if r, err = decompress(f); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("%w: import source %s is neither a directory nor a file", errdefs.ErrInvalidArgument, src)
	}
	s := &shiftStream{shift: shift, limits: limits, strip: strip, rootMode: 0o755}
	if err := s.extract(ctx, r, layerDir); err != nil {
		return 0, err
	}
	if err := fixImplicit(layerDir, shift, s.rootMode); err != nil {
		return 0, err
	}
	return s.bytes, nil
}

// decompress returns r, gunzipped if it starts with the gzip magic.
func decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		return br, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("%w: bad gzip stream: %v", errdefs.ErrInvalidArgument, err)
	}
	return zr, nil
}

// shiftStream rewrites a tar stream on its way to safetar.Extract: owners
// are checked against the mapped range and shifted into it, an optional
// leading directory is stripped from names, and sizes and entries are
// counted. It is used by one goroutine (plus the extractor it feeds).
type shiftStream struct {
	shift    IDShift
	limits   Limits
	strip    string // first name component to remove ("" for none)
	bytes    int64
	entries  int
	rootMode int64 // mode of the archive's root directory entry
}

// errPipe marks a failure to hand data to the extractor: the extractor's
// own error then says what went wrong.
type errPipe struct{ err error }

func (e errPipe) Error() string { return e.err.Error() }

func (s *shiftStream) extract(ctx context.Context, r io.Reader, dir string) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := safetar.Extract(ctx, dir, pr, safetar.Options{
			MaxBytes: s.limits.MaxBytes, MaxEntries: s.limits.MaxEntries, SameOwner: true})
		pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		done <- err
	}()
	ferr := s.filter(r, pw)
	pw.CloseWithError(ferr)
	xerr := <-done
	var pe errPipe
	switch {
	case ferr != nil && !errors.As(ferr, &pe):
		return ferr
	case xerr != nil:
		return xerr
	default:
		return ferr
	}
}

// filter copies the archive r to w entry by entry, checking and shifting.
func (s *shiftStream) filter(r io.Reader, w io.Writer) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: reading tar: %v", errdefs.ErrInvalidArgument, err)
		}
		if s.entries++; s.entries > s.limits.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", errdefs.ErrTooLarge, s.limits.MaxEntries)
		}
		keep, err := s.rewrite(h)
		if err != nil {
			return err
		}
		if !keep {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return errPipe{err}
		}
		if h.Typeflag == tar.TypeReg {
			if s.bytes += h.Size; s.bytes > s.limits.MaxBytes {
				return fmt.Errorf("%w: more than %d bytes of files", errdefs.ErrTooLarge, s.limits.MaxBytes)
			}
			if _, err := io.Copy(tw, tr); err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					return fmt.Errorf("%w: %s is truncated", errdefs.ErrInvalidArgument, h.Name)
				}
				return errPipe{err}
			}
		}
	}
	if err := tw.Close(); err != nil {
		return errPipe{err}
	}
	return nil
}

// rewrite checks and shifts one header in place; false drops the entry.
func (s *shiftStream) rewrite(h *tar.Header) (bool, error) {
	switch h.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeChar, tar.TypeBlock:
		return false, nil // device nodes are useless in a sandbox
	case tar.TypeGNUSparse:
		h.Typeflag = tar.TypeReg // the reader has expanded it
	case tar.TypeRegA:
		h.Typeflag = tar.TypeReg
	}
	if s.strip != "" {
		name, ok := stripFirst(h.Name, s.strip)
		if !ok {
			return false, fmt.Errorf("%w: entry %q outside %s/", errdefs.ErrInvalidArgument, h.Name, s.strip)
		}
		h.Name = name
		if h.Typeflag == tar.TypeLink {
			if h.Linkname, ok = stripFirst(h.Linkname, s.strip); !ok {
				return false, fmt.Errorf("%w: hard link %q outside %s/", errdefs.ErrInvalidArgument, h.Linkname, s.strip)
			}
		}
	}
	if h.Uid < 0 || h.Gid < 0 || int64(h.Uid) >= int64(s.shift.Size) || int64(h.Gid) >= int64(s.shift.Size) {
		return false, fmt.Errorf("%w: %s is owned by %d:%d, outside the mapped range 0-%d",
			errdefs.ErrInvalidArgument, h.Name, h.Uid, h.Gid, int64(s.shift.Size)-1)
	}
	h.Uid += int(s.shift.UID)
	h.Gid += int(s.shift.GID)
	h.Uname, h.Gname = "", ""
	h.PAXRecords, h.Xattrs = nil, nil //nolint:staticcheck // Xattrs: clear the deprecated field too
	h.Format = tar.FormatUnknown
	if n := strings.Trim(h.Name, "/"); (n == "" || n == ".") && h.Typeflag == tar.TypeDir {
		s.rootMode = h.Mode & 0o7777
	}
	return true, nil
}

// stripFirst removes the leading component first from a tar name.
func stripFirst(name, first string) (string, bool) {
	n := strings.TrimPrefix(name, "./")
	if n == first || n == first+"/" {
		return "./", true
	}
	rest, ok := strings.CutPrefix(n, first+"/")
	return rest, ok
}

// fixImplicit gives the layer root, and any directory the extractor created
// for a parent the archive did not list (owned by host root, since every
// archive entry was shifted), to the mapped root with mode 0755. layerDir is
// private to the import, so walking it by path is safe.
func fixImplicit(layerDir string, shift IDShift, rootMode int64) error {
	if err := os.Lchown(layerDir, int(shift.UID), int(shift.GID)); err != nil {
		return err
	}
	if err := os.Chmod(layerDir, fs.FileMode(rootMode&0o777)); err != nil {
		return err
	}
	return filepath.WalkDir(layerDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || p == layerDir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid < shift.UID {
			if err := os.Lchown(p, int(shift.UID), int(shift.GID)); err != nil {
				return err
			}
			return os.Chmod(p, 0o755)
		}
		return nil
	})
}
