package layerdiff

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

var shift = IDShift{UID: 100000, GID: 100000, Size: 65536}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (whiteout devices, trusted xattrs, chown)")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type entry struct {
	typ      byte
	uid, gid int
	mode     int64
	link     string
	body     string
	pax      map[string]string
}

func readTar(t *testing.T, b []byte) (map[string]entry, []string) {
	t.Helper()
	out := map[string]entry{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, order
		}
		must(t, err)
		body, err := io.ReadAll(tr)
		must(t, err)
		pax := map[string]string{}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				pax[k] = v
			}
		}
		out[h.Name] = entry{typ: h.Typeflag, uid: h.Uid, gid: h.Gid, mode: h.Mode, link: h.Linkname, body: string(body), pax: pax}
		order = append(order, h.Name)
	}
}

func TestWriteConvertsOverlayUpper(t *testing.T) {
	needRoot(t)
	up := t.TempDir()
	own := func(p string, uid, gid int) { must(t, os.Lchown(filepath.Join(up, p), uid, gid)) }
	must(t, os.Chown(up, int(shift.UID), int(shift.GID)))
	must(t, os.MkdirAll(filepath.Join(up, "etc/app"), 0o755))
	own("etc", 100000, 100000)
	own("etc/app", 100000, 100000)
	must(t, os.WriteFile(filepath.Join(up, "etc/app/conf"), []byte("hello"), 0o640))
	own("etc/app/conf", 101000, 100005)
	// A whiteout of a lower file.
	must(t, unix.Mknod(filepath.Join(up, "etc/gone"), unix.S_IFCHR|0o000, 0))
	own("etc/gone", 100000, 100000)
	// An opaque directory with one new file.
	must(t, os.Mkdir(filepath.Join(up, "opq"), 0o700))
	own("opq", 100000, 100000)
	if err := unix.Setxattr(filepath.Join(up, "opq"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Skipf("trusted xattrs unsupported here: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(up, "opq/new"), []byte("n"), 0o644))
	own("opq/new", 100000, 100000)
	// Hard links.
	must(t, os.WriteFile(filepath.Join(up, "a"), []byte("linked"), 0o755))
	own("a", 100000, 100000)
	must(t, os.Link(filepath.Join(up, "a"), filepath.Join(up, "b")))
	// A symlink pointing out (never followed), an xattr, a socket-like
	// device that is dropped, and the excluded agent directory.
	must(t, os.Symlink("/etc/shadow", filepath.Join(up, "ln")))
	own("ln", 100000, 100000)
	userXattr := unix.Setxattr(filepath.Join(up, "a"), "user.note", []byte("v"), 0) == nil
	must(t, unix.Setxattr(filepath.Join(up, "a"), "trusted.overlay.origin", []byte("x"), 0))
	must(t, unix.Mknod(filepath.Join(up, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, os.MkdirAll(filepath.Join(up, ".agentkernel/run"), 0o755))
	must(t, unix.Chmod(filepath.Join(up, "etc"), 0o1775))

	var buf bytes.Buffer
	st, err := Write(context.Background(), &buf, up, Options{Shift: shift, Exclude: []string{".agentkernel"}})
	must(t, err)
	got, order := readTar(t, buf.Bytes())
	names := append([]string(nil), order...)
	sort.Strings(names)
	want := []string{"a", "b", "etc/", "etc/.wh.gone", "etc/app/", "etc/app/conf", "ln", "opq/", "opq/.wh..wh..opq", "opq/new"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("entries %v, want %v", names, want)
	}
	if e := got["etc/app/conf"]; e.typ != tar.TypeReg || e.uid != 1000 || e.gid != 5 || e.mode != 0o640 || e.body != "hello" {
		t.Errorf("conf: %+v", e)
	}
	if e := got["etc/"]; e.typ != tar.TypeDir || e.mode != 0o1775 || e.uid != 0 {
		t.Errorf("etc/: %+v", e)
	}
	if e := got["etc/.wh.gone"]; e.typ != tar.TypeReg || e.body != "" {
		t.Errorf("whiteout: %+v", e)
	}
	// The opaque marker follows its directory's entry.
	if i, j := indexOf(order, "opq/"), indexOf(order, "opq/.wh..wh..opq"); j != i+1 {
		t.Errorf("opaque marker at %d, directory at %d", j, i)
	}
	a, b := got["a"], got["b"]
	if a.typ != tar.TypeReg || a.body != "linked" || b.typ != tar.TypeLink || b.link != "a" {
		t.Errorf("hard links: a %+v, b %+v", a, b)
	}
	if userXattr && a.pax["SCHILY.xattr.user.note"] != "v" {
		t.Errorf("user xattr not kept: %v", a.pax)
	}
	if _, ok := a.pax["SCHILY.xattr.trusted.overlay.origin"]; ok {
		t.Error("trusted.overlay.origin leaked into the layer")
	}
	if e := got["ln"]; e.typ != tar.TypeSymlink || e.link != "/etc/shadow" {
		t.Errorf("symlink: %+v", e)
	}
	if st.Whiteouts != 1 || st.OpaqueDirs != 1 || st.Hardlinks != 1 || st.Skipped != 1 {
		t.Errorf("stats %+v", st)
	}
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

func TestWriteRefusesWhatALayerCannotHold(t *testing.T) {
	needRoot(t)
	t.Run("owner outside the range", func(t *testing.T) {
		up := t.TempDir()
		must(t, os.WriteFile(filepath.Join(up, "f"), nil, 0o644)) // owned by host root
		_, err := Write(context.Background(), io.Discard, up, Options{Shift: shift})
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "outside") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		up := t.TempDir()
		must(t, os.Mkdir(filepath.Join(up, "d"), 0o755))
		must(t, os.Chown(filepath.Join(up, "d"), 100000, 100000))
		if err := unix.Setxattr(filepath.Join(up, "d"), "trusted.overlay.redirect", []byte("/x"), 0); err != nil {
			t.Skipf("needs root on a filesystem with trusted.* xattrs (CI runs as root on ext4): %v", err)
		}
		_, err := Write(context.Background(), io.Discard, up, Options{Shift: shift})
		if !errors.Is(err, errdefs.ErrNotImplemented) || !strings.Contains(err.Error(), "redirect") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		up := t.TempDir()
		must(t, os.WriteFile(filepath.Join(up, "f"), make([]byte, 100), 0o644))
		must(t, os.Chown(filepath.Join(up, "f"), 100000, 100000))
		_, err := Write(context.Background(), io.Discard, up, Options{Shift: shift, MaxBytes: 10})
		if !errors.Is(err, errdefs.ErrTooLarge) {
			t.Fatalf("err = %v", err)
		}
	})
}
