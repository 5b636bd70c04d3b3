package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown into the mapped uid range)")
	}
}

func openStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func owner(t *testing.T, p string) (int, int) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

type entry struct {
	hdr  tar.Header
	body string
}

func makeTar(t testing.TB, gz bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var tw *tar.Writer
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		tw = tar.NewWriter(zw)
	} else {
		tw = tar.NewWriter(&buf)
	}
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, dir string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, "in.tar")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestImportDirectory(t *testing.T) {
	requireRoot(t)
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	must(os.WriteFile(filepath.Join(src, "bin", "tool"), []byte("#!/bin/sh\n"), 0o4755))
	must(os.Chmod(filepath.Join(src, "bin", "tool"), 0o755|fs.ModeSetuid))
	must(os.WriteFile(filepath.Join(src, "data"), []byte("hello"), 0o640))
	must(os.Chown(filepath.Join(src, "data"), 1000, 50))
	must(os.Symlink("bin/tool", filepath.Join(src, "link")))
	must(os.Symlink("/etc/shadow", filepath.Join(src, "abs-link")))
	must(os.Link(filepath.Join(src, "data"), filepath.Join(src, "hard")))
	must(syscall.Mkfifo(filepath.Join(src, "fifo"), 0o600))

	s := openStore(t)
	img, err := s.Import(context.Background(), "tools:v1", src)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 1 || img.Size != int64(len("#!/bin/sh\n")+len("hello")) {
		t.Fatalf("image = %+v", img)
	}
	l := img.Layers[0]
	if u, g := owner(t, l); u != 100000 || g != 100000 {
		t.Errorf("layer root owned by %d:%d", u, g)
	}
	if u, g := owner(t, filepath.Join(l, "data")); u != 101000 || g != 100050 {
		t.Errorf("data owned by %d:%d, want 101000:100050", u, g)
	}
	fi, err := os.Stat(filepath.Join(l, "bin", "tool"))
	if err != nil || fi.Mode().Perm() != 0o755 || fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("tool mode %v (setuid kept after chown?) %v", fi.Mode(), err)
	}
	if tgt, err := os.Readlink(filepath.Join(l, "link")); err != nil || tgt != "bin/tool" {
		t.Errorf("link -> %q %v", tgt, err)
	}
	if tgt, _ := os.Readlink(filepath.Join(l, "abs-link")); tgt != "/etc/shadow" {
		t.Errorf("abs-link -> %q", tgt)
	}
	a, _ := os.Stat(filepath.Join(l, "data"))
	b, _ := os.Stat(filepath.Join(l, "hard"))
	if !os.SameFile(a, b) {
		t.Error("hard link not preserved")
	}
	if fi, err := os.Lstat(filepath.Join(l, "fifo")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v %v", fi, err)
	}

	// Get and List see it; a second import under the name fails.
	got, err := s.Get("tools:v1")
	if err != nil || got.ID != img.ID || got.Layers[0] != l {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	list, err := s.List()
	if err != nil || len(list) != 2 || list[0].Name != HostImage || list[1].Name != "tools:v1" {
		t.Fatalf("List = %v, %v", list, err)
	}
	if _, err := s.Import(context.Background(), "tools:v1", src); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second import: %v", err)
	}
	if err := s.Remove("tools:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("layer left behind: %v", err)
	}
	if _, err := s.Get("tools:v1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get after Remove: %v", err)
	}
	if err := s.Remove("tools:v1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
	assertEmpty(t, s.dir("tmp"))
}

func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("%s not empty: %v", dir, entries)
	}
}

func TestImportTarball(t *testing.T) {
	requireRoot(t)
	mt := time.Unix(1700000000, 0)
	for _, gz := range []bool{false, true} {
		b := makeTar(t, gz,
			entry{hdr: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}},
			entry{hdr: tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt}},
			entry{hdr: tar.Header{Name: "./etc/passwd", Typeflag: tar.TypeReg, ModTime: mt}, body: "root:x:0:0::/root:/bin/sh\n"},
			entry{hdr: tar.Header{Name: "implicit/parent/file", Typeflag: tar.TypeReg, Uid: 7, Gid: 8}, body: "x"},
			entry{hdr: tar.Header{Name: "sh", Typeflag: tar.TypeSymlink, Linkname: "/bin/busybox"}},
			entry{hdr: tar.Header{Name: "passwd2", Typeflag: tar.TypeLink, Linkname: "etc/passwd"}},
			entry{hdr: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}},
			entry{hdr: tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, ModTime: mt}, body: "replaced\n"},
		)
		s := openStore(t)
		img, err := s.Import(context.Background(), "mini", writeFile(t, t.TempDir(), b))
		if err != nil {
			t.Fatalf("gzip=%v: %v", gz, err)
		}
		l := img.Layers[0]
		if c, _ := os.ReadFile(filepath.Join(l, "etc/passwd")); string(c) != "replaced\n" {
			t.Errorf("passwd = %q", c)
		}
		if c, _ := os.ReadFile(filepath.Join(l, "passwd2")); string(c) != "root:x:0:0::/root:/bin/sh\n" {
			t.Errorf("hard link content = %q (the link keeps the first file)", c)
		}
		if u, g := owner(t, filepath.Join(l, "implicit/parent/file")); u != 100007 || g != 100008 {
			t.Errorf("owner %d:%d", u, g)
		}
		if u, _ := owner(t, filepath.Join(l, "implicit")); u != 100000 {
			t.Errorf("implicit parent owned by %d", u)
		}
		if _, err := os.Lstat(filepath.Join(l, "dev/null")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("device node created: %v", err)
		}
		if fi, _ := os.Stat(filepath.Join(l, "etc")); !fi.ModTime().Equal(mt) {
			t.Errorf("etc mtime %v, want %v", fi.ModTime(), mt)
		}
	}
}

func TestImportHostile(t *testing.T) {
	requireRoot(t)
	outside := t.TempDir()
	cases := map[string]struct {
		entries []entry
		class   error
	}{
		"dotdot":        {[]entry{{hdr: tar.Header{Name: "../escape", Typeflag: tar.TypeReg}, body: "x"}}, errdefs.ErrInvalidArgument},
		"nested dotdot": {[]entry{{hdr: tar.Header{Name: "a/../../escape", Typeflag: tar.TypeReg}, body: "x"}}, errdefs.ErrInvalidArgument},
		"absolute":      {[]entry{{hdr: tar.Header{Name: outside + "/abs", Typeflag: tar.TypeReg}, body: "x"}}, errdefs.ErrInvalidArgument},
		"through symlink": {[]entry{
			{hdr: tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: outside}},
			{hdr: tar.Header{Name: "a/evil", Typeflag: tar.TypeReg}, body: "x"},
		}, errdefs.ErrInvalidArgument},
		"dir through symlink": {[]entry{
			{hdr: tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: outside}},
			{hdr: tar.Header{Name: "a/sub/", Typeflag: tar.TypeDir}},
		}, errdefs.ErrInvalidArgument},
		"hardlink out": {[]entry{{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../../../etc/passwd"}}}, errdefs.ErrInvalidArgument},
		"hardlink abs": {[]entry{{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}}, errdefs.ErrInvalidArgument},
		"hardlink via symlink": {[]entry{
			{hdr: tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
			{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "a/passwd"}},
		}, errdefs.ErrInvalidArgument},
		"uid out of range": {[]entry{{hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg, Uid: 65536}}}, errdefs.ErrInvalidArgument},
		"negative gid":     {[]entry{{hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg, Gid: -1}}}, errdefs.ErrInvalidArgument},
		"file over dir": {[]entry{
			{hdr: tar.Header{Name: "d/", Typeflag: tar.TypeDir}},
			{hdr: tar.Header{Name: "d/x", Typeflag: tar.TypeReg}},
			{hdr: tar.Header{Name: "d", Typeflag: tar.TypeReg}},
		}, errdefs.ErrFailedPrecondition},
		"root not dir": {[]entry{{hdr: tar.Header{Name: ".", Typeflag: tar.TypeReg}}}, errdefs.ErrInvalidArgument},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := openStore(t)
			_, err := s.Import(context.Background(), "bad", writeFile(t, t.TempDir(), makeTar(t, false, c.entries...)))
			if !errors.Is(err, c.class) {
				t.Fatalf("err = %v, want %v", err, c.class)
			}
			assertEmpty(t, outside)
			assertEmpty(t, s.dir("tmp"))
			assertEmpty(t, s.dir("layers"))
			assertEmpty(t, s.dir("images"))
		})
	}
}

func TestImportLimits(t *testing.T) {
	requireRoot(t)
	s, err := Open(t.TempDir(), Options{Limits: Limits{MaxBytes: 10, MaxEntries: 3}})
	if err != nil {
		t.Fatal(err)
	}
	big := makeTar(t, false, entry{hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg}, body: "01234567890"})
	if _, err := s.Import(context.Background(), "big", writeFile(t, t.TempDir(), big)); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Errorf("size limit: %v", err)
	}
	many := makeTar(t, false,
		entry{hdr: tar.Header{Name: "a", Typeflag: tar.TypeReg}},
		entry{hdr: tar.Header{Name: "b", Typeflag: tar.TypeReg}},
		entry{hdr: tar.Header{Name: "c", Typeflag: tar.TypeReg}},
		entry{hdr: tar.Header{Name: "d", Typeflag: tar.TypeReg}})
	if _, err := s.Import(context.Background(), "many", writeFile(t, t.TempDir(), many)); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Errorf("entry limit: %v", err)
	}
	// A truncated archive is an error, not a short file.
	ok := makeTar(t, false, entry{hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg}, body: "0123456789"})
	if _, err := s.Import(context.Background(), "cut", writeFile(t, t.TempDir(), ok[:520])); err == nil {
		t.Error("truncated tar accepted")
	}
	if _, err := s.Import(context.Background(), "junk", writeFile(t, t.TempDir(), []byte("\x1f\x8bnot gzip"))); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad gzip: %v", err)
	}
	assertEmpty(t, s.dir("layers"))
}

func TestNames(t *testing.T) {
	for _, ok := range []string{"a", "alpine:3.19", "docker.io/library/alpine:latest", "my-img_2.x"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "A", "../x", "a//b", "/a", "a:", "a:b:c", "-a", "a b", string(make([]byte, 300))} {
		if err := ValidateName(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q accepted", bad)
		}
	}
	s := openStore(t)
	if _, err := s.Import(context.Background(), HostImage, "/usr"); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("import as host: %v", err)
	}
	if _, err := s.Import(context.Background(), "x", "relative"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("relative source: %v", err)
	}
	if _, err := s.Import(context.Background(), "x", "/nonexistent/dir"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing source: %v", err)
	}
	if err := s.Remove(HostImage); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("remove host: %v", err)
	}
	if img, err := s.Get(HostImage); err != nil || !img.Host {
		t.Errorf("host image: %+v %v", img, err)
	}
}

func FuzzImportTar(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root")
	}
	f.Add(makeTar(f, false, entry{hdr: tar.Header{Name: "a/b", Typeflag: tar.TypeReg}, body: "x"}))
	f.Add(makeTar(f, false,
		entry{hdr: tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: "/"}},
		entry{hdr: tar.Header{Name: "a/b", Typeflag: tar.TypeReg}, body: "x"}))
	f.Add(makeTar(f, true, entry{hdr: tar.Header{Name: "../x", Typeflag: tar.TypeLink, Linkname: "y"}}))
	f.Add(makeTar(f, true, entry{hdr: tar.Header{Name: "d/", Typeflag: tar.TypeDir, Uid: 70000}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		top := t.TempDir()
		layer := filepath.Join(top, "layer")
		if err := os.Mkdir(layer, 0o755); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(top, "in.tar")
		if err := os.WriteFile(src, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := importInto(context.Background(), src, layer, IDShift{UID: 100000, GID: 100000, Size: 65536}, Limits{MaxBytes: 1 << 20, MaxEntries: 1000})
		entries, rerr := os.ReadDir(top)
		if rerr != nil || len(entries) != 2 {
			t.Fatalf("something escaped the layer: %v %v", entries, rerr)
		}
		if err != nil {
			return
		}
		// Everything in an accepted layer belongs to the mapped range.
		filepath.WalkDir(layer, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, _ := d.Info()
			if st := fi.Sys().(*syscall.Stat_t); st.Uid < 100000 || st.Uid >= 165536 || st.Gid < 100000 || st.Gid >= 165536 {
				t.Errorf("%s owned by %d:%d", p, st.Uid, st.Gid)
			}
			return nil
		})
	})
}
