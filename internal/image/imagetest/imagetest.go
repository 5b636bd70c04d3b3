// Package imagetest has helpers for the image packages' tests: building
// layer tars and describing a directory tree exactly (types, modes,
// owners, contents, link targets, device numbers, xattrs), so that a test
// can compare an unpacked or mounted root filesystem with what it expects.
package imagetest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Entry is one tar entry; Body is a regular file's content.
type Entry struct {
	Hdr  tar.Header
	Body string
}

// Tar returns an uncompressed tar of entries. A regular entry's Size is
// set from Body; Mode defaults to 0644 (0755 for directories).
func Tar(t testing.TB, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.Body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Dir, File, Link, Hard, Whiteout and Opaque build common entries owned
// by 0:0.
func Dir(name string) Entry { return Entry{Hdr: tar.Header{Name: name, Typeflag: tar.TypeDir}} }
func File(name, body string) Entry {
	return Entry{Hdr: tar.Header{Name: name, Typeflag: tar.TypeReg}, Body: body}
}
func Link(name, target string) Entry {
	return Entry{Hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}}
}
func Hard(name, target string) Entry {
	return Entry{Hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}
func Whiteout(dir, name string) Entry {
	return File(filepath.Join(dir, ".wh."+name), "")
}
func Opaque(dir string) Entry { return File(filepath.Join(dir, ".wh..wh..opq"), "") }

// Describe lists every entry under root (root itself as "."), sorted, one
// line each:
//
//	path d|f|l|c|p mode uid:gid [details]
//
// details: a file's content (quoted, or its size past 64 bytes) and link
// count when above 1; a symlink's target; a device's numbers; then the
// xattrs user.*, security.capability and trusted.overlay.opaque.
// Owners are shown relative to shiftUID/shiftGID ("+0" is the mapped root)
// when at or above them.
func Describe(t testing.TB, root string, shiftUID, shiftGID uint32) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		owner := func(id, shift uint32) string {
			if id >= shift && shift > 0 {
				return fmt.Sprintf("+%d", id-shift)
			}
			return fmt.Sprint(id)
		}
		line := fmt.Sprintf("%s %s %04o %s:%s", rel, kind(fi.Mode()), uint32(fi.Mode().Perm())|special(fi.Mode()),
			owner(st.Uid, shiftUID), owner(st.Gid, shiftGID))
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if len(b) <= 64 {
				line += fmt.Sprintf(" %q", b)
			} else {
				line += fmt.Sprintf(" (%d bytes)", len(b))
			}
			if st.Nlink > 1 {
				line += fmt.Sprintf(" links=%d", st.Nlink)
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode()&fs.ModeDevice != 0:
			line += fmt.Sprintf(" %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		for _, name := range []string{"trusted.overlay.opaque", "security.capability", "user.test", "user.other"} {
			buf := make([]byte, 256)
			n, err := unix.Lgetxattr(p, name, buf)
			if err == nil {
				line += fmt.Sprintf(" %s=%x", name, buf[:n])
			}
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "d"
	case m&fs.ModeSymlink != 0:
		return "l"
	case m&fs.ModeCharDevice != 0:
		return "c"
	case m&fs.ModeDevice != 0:
		return "b"
	case m&fs.ModeNamedPipe != 0:
		return "p"
	case m&fs.ModeSocket != 0:
		return "s"
	}
	return "f"
}

func special(m fs.FileMode) uint32 {
	var s uint32
	if m&fs.ModeSetuid != 0 {
		s |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		s |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		s |= 0o1000
	}
	return s
}

// Diff returns a readable difference between two descriptions, or "".
func Diff(got, want []string) string {
	g := map[string]bool{}
	for _, l := range got {
		g[l] = true
	}
	w := map[string]bool{}
	for _, l := range want {
		w[l] = true
	}
	var b strings.Builder
	for _, l := range want {
		if !g[l] {
			fmt.Fprintf(&b, "  missing: %s\n", l)
		}
	}
	for _, l := range got {
		if !w[l] {
			fmt.Fprintf(&b, "  extra:   %s\n", l)
		}
	}
	return b.String()
}
