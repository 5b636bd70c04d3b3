package safetar

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Write writes a tar stream of the file or directory at root to w. Entry
// names start with the base name of root ("dir/", "dir/a", ...); symlinks
// are stored as symlinks and never followed; a file with several links
// inside root is stored once and then as hard links; FIFOs and device nodes
// are stored as such and sockets are skipped. Owners are numeric uid/gid.
//
// A file that changes while it is read is stored with the size it had when
// its header was written (cut, or padded with zeros).
func Write(ctx context.Context, w io.Writer, root string) error {
	root = filepath.Clean(root)
	base := filepath.Base(root)
	if base == "/" || base == "." || base == ".." {
		return fmt.Errorf("tar %s: %w: cannot name the archive after %q", root, errdefs.ErrInvalidArgument, base)
	}
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{} // (dev, ino) → first name
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := path.Join(base, filepath.ToSlash(rel))
		return writeEntry(ctx, tw, p, name, links)
	})
	if err != nil {
		return fmt.Errorf("tar %s: %w", root, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tar %s: %w", root, err)
	}
	return nil
}

func writeEntry(ctx context.Context, tw *tar.Writer, p, name string, links map[[2]uint64]string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no stat data", p)
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: fi.ModTime(),
	}
	mode := fi.Mode()
	switch {
	case mode.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	case mode.IsRegular():
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if first, ok := links[key]; ok && st.Nlink > 1 {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return tw.WriteHeader(hdr)
		}
		if st.Nlink > 1 {
			links[key] = name
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
		return writeFile(ctx, tw, p, hdr)
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case mode&fs.ModeNamedPipe != 0:
		hdr.Typeflag = tar.TypeFifo
	case mode&fs.ModeDevice != 0:
		hdr.Typeflag = tar.TypeBlock
		if mode&fs.ModeCharDevice != 0 {
			hdr.Typeflag = tar.TypeChar
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
	default:
		return nil // sockets and the like
	}
	return tw.WriteHeader(hdr)
}

func writeFile(ctx context.Context, tw *tar.Writer, p string, hdr *tar.Header) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(tw, &ctxReader{ctx: ctx, r: io.LimitReader(f, hdr.Size)})
	if err != nil {
		return err
	}
	if n < hdr.Size { // the file shrank: pad to the size announced
		_, err = io.CopyN(tw, zeros{}, hdr.Size-n)
	}
	return err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
