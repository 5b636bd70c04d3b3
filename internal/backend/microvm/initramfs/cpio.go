// Package initramfs writes the microVM guest's initramfs: an uncompressed
// cpio archive in the "newc" format the Linux kernel unpacks into its
// rootfs before running /init.
package initramfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// maxName bounds an entry's name (the kernel's limit is PATH_MAX).
const maxName = 4096

// Writer writes a newc cpio archive. Create it with NewWriter, add entries,
// then Close it to write the trailer; it does not close the underlying
// writer. Not safe for concurrent use.
type Writer struct {
	w      io.Writer
	ino    uint32
	closed bool
	err    error
}

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, ino: 1} }

func pad4(n int) int { return (4 - n%4) % 4 }

func (cw *Writer) header(name string, mode uint32, size int, rmaj, rmin uint32) error {
	if cw.err != nil {
		return cw.err
	}
	if cw.closed {
		return errors.New("initramfs: write after Close")
	}
	if name == "" || len(name) > maxName || strings.ContainsRune(name, 0) || strings.HasPrefix(name, "/") || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
		if name != "TRAILER!!!" {
			return fmt.Errorf("initramfs: bad entry name %q", name)
		}
	}
	if uint64(size) > 0xffffffff {
		return fmt.Errorf("initramfs: %s: %d bytes is over the format's 4 GiB limit", name, size)
	}
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	h := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		cw.ino, mode, 0, 0, nlink, 0, size, 0, 0, rmaj, rmin, len(name)+1, 0)
	cw.ino++
	buf := make([]byte, 0, len(h)+len(name)+4)
	buf = append(buf, h...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = append(buf, make([]byte, pad4(len(buf)))...)
	_, cw.err = cw.w.Write(buf)
	return cw.err
}

func (cw *Writer) data(r io.Reader, size int) error {
	if cw.err != nil {
		return cw.err
	}
	n, err := io.CopyN(cw.w, r, int64(size))
	if err != nil {
		cw.err = fmt.Errorf("initramfs: copied %d of %d bytes: %w", n, size, err)
		return cw.err
	}
	_, cw.err = cw.w.Write(make([]byte, pad4(size)))
	return cw.err
}

// Dir adds a directory.
func (cw *Writer) Dir(name string, perm fs.FileMode) error {
	return cw.header(name, 0o040000|uint32(perm.Perm()), 0, 0, 0)
}

// File adds a regular file of size bytes read from r.
func (cw *Writer) File(name string, perm fs.FileMode, r io.Reader, size int) error {
	if err := cw.header(name, 0o100000|uint32(perm.Perm()), size, 0, 0); err != nil {
		return err
	}
	return cw.data(r, size)
}

// Bytes adds a regular file with content b.
func (cw *Writer) Bytes(name string, perm fs.FileMode, b []byte) error {
	return cw.File(name, perm, strings.NewReader(string(b)), len(b))
}

// HostFile adds the host's regular file src as name.
func (cw *Writer) HostFile(name string, perm fs.FileMode, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("initramfs: %s is not a regular file", src)
	}
	return cw.File(name, perm, f, int(fi.Size()))
}

// Symlink adds a symbolic link.
func (cw *Writer) Symlink(name, target string) error {
	if err := cw.header(name, 0o120777, len(target), 0, 0); err != nil {
		return err
	}
	return cw.data(strings.NewReader(target), len(target))
}

// CharDev adds a character device node.
func (cw *Writer) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return cw.header(name, 0o020000|uint32(perm.Perm()), 0, major, minor)
}

// Close writes the trailer. It is idempotent.
func (cw *Writer) Close() error {
	if cw.closed {
		return cw.err
	}
	err := cw.header("TRAILER!!!", 0, 0, 0, 0)
	cw.closed = true
	return err
}
