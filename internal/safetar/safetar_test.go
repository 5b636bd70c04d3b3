package safetar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

type entry struct {
	typ      byte
	name     string
	link     string
	body     string
	mode     int64
	size     int64 // overrides len(body) when non-zero
	uid, gid int
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		hdr := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: mode, Size: size,
			ModTime: time.Unix(1700000000, 0), Uid: e.uid, Gid: e.gid, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("header %q: %v", e.name, err)
		}
		if size > 0 {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandbox makes base/dir (the extraction target) and base/outside with a
// sentinel file, and returns a check that nothing outside dir changed.
func sandbox(t *testing.T) (dir string, check func()) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "dir")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{dir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "sentinel"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, func() {
		t.Helper()
		assertOnly(t, base, map[string]bool{"dir": true, "outside": true, "outside/sentinel": true}, "dir/")
		if b, err := os.ReadFile(filepath.Join(outside, "sentinel")); err != nil || string(b) != "keep" {
			t.Errorf("sentinel changed: %q, %v", b, err)
		}
	}
}

// assertOnly fails unless every path under base is in allowed or starts
// with prefix.
func assertOnly(t testing.TB, base string, allowed map[string]bool, prefix string) {
	t.Helper()
	filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == base {
			return nil
		}
		rel, _ := filepath.Rel(base, p)
		if !allowed[rel] && !strings.HasPrefix(rel, prefix) {
			t.Errorf("unexpected path outside the extraction dir: %s", rel)
		}
		return nil
	})
}

func TestRoundTrip(t *testing.T) {
	src := filepath.Join(t.TempDir(), "proj")
	must(t, os.MkdirAll(filepath.Join(src, "sub", "deep"), 0o750))
	must(t, os.WriteFile(filepath.Join(src, "a.txt"), []byte("hello"), 0o640))
	must(t, os.WriteFile(filepath.Join(src, "sub", "run.sh"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.Symlink("../a.txt", filepath.Join(src, "sub", "link")))
	must(t, os.Link(filepath.Join(src, "a.txt"), filepath.Join(src, "sub", "deep", "hard")))
	must(t, syscall.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	must(t, os.Chmod(filepath.Join(src, "sub"), 0o555)) // read-only dir with content
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "sub"), 0o755) })
	mtime := time.Unix(1600000000, 0)
	must(t, os.Chtimes(filepath.Join(src, "a.txt"), mtime, mtime))

	var buf bytes.Buffer
	must(t, Write(context.Background(), &buf, src))
	var names []string
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, h.Name)
	}
	sort.Strings(names)
	want := []string{"proj/", "proj/a.txt", "proj/fifo", "proj/sub/", "proj/sub/deep/", "proj/sub/deep/hard", "proj/sub/link", "proj/sub/run.sh"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("entries %v, want %v", names, want)
	}

	dst := t.TempDir()
	must(t, Extract(context.Background(), dst, bytes.NewReader(buf.Bytes()), Options{SameOwner: os.Geteuid() == 0}))
	t.Cleanup(func() { os.Chmod(filepath.Join(dst, "proj", "sub"), 0o755) })
	got := filepath.Join(dst, "proj")
	if b, err := os.ReadFile(filepath.Join(got, "a.txt")); err != nil || string(b) != "hello" {
		t.Errorf("a.txt = %q, %v", b, err)
	}
	checkMode(t, filepath.Join(got, "a.txt"), 0o640)
	checkMode(t, filepath.Join(got, "sub", "run.sh"), 0o755)
	checkMode(t, filepath.Join(got, "sub"), fs.ModeDir|0o555)
	checkMode(t, filepath.Join(got, "sub", "deep"), fs.ModeDir|0o750)
	checkMode(t, filepath.Join(got, "fifo"), fs.ModeNamedPipe|0o600)
	if l, err := os.Readlink(filepath.Join(got, "sub", "link")); err != nil || l != "../a.txt" {
		t.Errorf("symlink = %q, %v", l, err)
	}
	a, _ := os.Stat(filepath.Join(got, "a.txt"))
	h, _ := os.Stat(filepath.Join(got, "sub", "deep", "hard"))
	if !os.SameFile(a, h) {
		t.Errorf("hard link not preserved")
	}
	if !a.ModTime().Equal(mtime) {
		t.Errorf("mtime %v, want %v", a.ModTime(), mtime)
	}
}

func TestWriteSingleFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "one.txt")
	must(t, os.WriteFile(p, []byte("x"), 0o600))
	var buf bytes.Buffer
	must(t, Write(context.Background(), &buf, p))
	h, err := tar.NewReader(&buf).Next()
	if err != nil || h.Name != "one.txt" || h.Size != 1 {
		t.Fatalf("got %+v, %v", h, err)
	}
	if err := Write(context.Background(), &buf, "/"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Write(/) = %v, want invalid argument", err)
	}
}

// hostile lists archives that must not write outside the target directory.
func hostile(outside string) map[string][]entry {
	return map[string][]entry{
		"dotdot":             {{typ: tar.TypeReg, name: "../outside/evil", body: "x"}},
		"nested dotdot":      {{typ: tar.TypeReg, name: "a/../../outside/evil", body: "x"}},
		"absolute":           {{typ: tar.TypeReg, name: outside + "/evil", body: "x"}},
		"symlink then write": {{typ: tar.TypeSymlink, name: "l", link: "../outside"}, {typ: tar.TypeReg, name: "l/evil", body: "x"}},
		"abs symlink then write": {{typ: tar.TypeSymlink, name: "l", link: outside},
			{typ: tar.TypeReg, name: "l/evil", body: "x"}},
		"symlink then dir": {{typ: tar.TypeSymlink, name: "l", link: outside}, {typ: tar.TypeDir, name: "l/sub/"}},
		"symlink over file then write": {{typ: tar.TypeReg, name: "f", body: "x"},
			{typ: tar.TypeSymlink, name: "f", link: outside + "/sentinel"}, {typ: tar.TypeReg, name: "f/x", body: "x"}},
		"symlink chain": {{typ: tar.TypeSymlink, name: "a", link: "b"}, {typ: tar.TypeSymlink, name: "b", link: outside},
			{typ: tar.TypeReg, name: "a/evil", body: "x"}},
		"hardlink outside":     {{typ: tar.TypeLink, name: "h", link: "../outside/sentinel"}},
		"hardlink absolute":    {{typ: tar.TypeLink, name: "h", link: outside + "/sentinel"}},
		"hardlink via symlink": {{typ: tar.TypeSymlink, name: "l", link: outside}, {typ: tar.TypeLink, name: "h", link: "l/sentinel"}},
		"device":               {{typ: tar.TypeChar, name: "null"}},
		"write via symlink to sentinel": {{typ: tar.TypeSymlink, name: "s", link: outside + "/sentinel"},
			{typ: tar.TypeReg, name: "s", body: "overwritten"}},
	}
}

func TestHostileArchives(t *testing.T) {
	for _, walk := range []bool{false, true} {
		name := "openat2"
		if walk {
			name = "walk"
		}
		t.Run(name, func(t *testing.T) {
			if walk {
				noOpenat2.Store(true)
				t.Cleanup(func() { noOpenat2.Store(false) })
			}
			for name, entries := range hostile("OUTSIDE") {
				t.Run(name, func(t *testing.T) {
					dir, check := sandbox(t)
					outside := filepath.Join(filepath.Dir(dir), "outside")
					for i := range entries {
						entries[i].name = strings.ReplaceAll(entries[i].name, "OUTSIDE", outside)
						entries[i].link = strings.ReplaceAll(entries[i].link, "OUTSIDE", outside)
					}
					err := Extract(context.Background(), dir, bytes.NewReader(makeTar(t, entries...)), Options{})
					t.Logf("Extract: %v", err)
					check()
				})
			}
		})
	}
}

func TestHostileErrorsAreClassified(t *testing.T) {
	dir, check := sandbox(t)
	err := Extract(context.Background(), dir, bytes.NewReader(makeTar(t, entry{typ: tar.TypeReg, name: "../x", body: "x"})), Options{})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("dotdot: %v, want invalid argument", err)
	}
	err = Extract(context.Background(), dir, bytes.NewReader(makeTar(t,
		entry{typ: tar.TypeSymlink, name: "l", link: "/"}, entry{typ: tar.TypeReg, name: "l/x", body: "x"})), Options{})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("through symlink: %v, want invalid argument", err)
	}
	check()
}

func TestExistingSymlinkInDir(t *testing.T) {
	for _, walk := range []bool{false, true} {
		noOpenat2.Store(walk)
		dir, check := sandbox(t)
		outside := filepath.Join(filepath.Dir(dir), "outside")
		must(t, os.Symlink(outside, filepath.Join(dir, "pre")))
		must(t, os.Symlink("sub", filepath.Join(dir, "inside"))) // even a symlink staying inside is refused
		must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
		for _, name := range []string{"pre/evil", "inside/evil"} {
			err := Extract(context.Background(), dir, bytes.NewReader(makeTar(t, entry{typ: tar.TypeReg, name: name, body: "x"})), Options{})
			if err == nil {
				t.Errorf("walk=%v: writing %s through an existing symlink succeeded", walk, name)
			}
		}
		// Replacing the symlink itself is fine: it is removed, not followed.
		must(t, Extract(context.Background(), dir, bytes.NewReader(makeTar(t, entry{typ: tar.TypeReg, name: "pre", body: "file"})), Options{}))
		if fi, err := os.Lstat(filepath.Join(dir, "pre")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("pre is %v, %v; want a regular file", fi, err)
		}
		check()
	}
	noOpenat2.Store(false)
}

func TestLimits(t *testing.T) {
	dir, check := sandbox(t)
	big := makeTar(t, entry{typ: tar.TypeReg, name: "a", body: strings.Repeat("x", 100)})
	if err := Extract(context.Background(), dir, bytes.NewReader(big), Options{MaxBytes: 99}); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Errorf("MaxBytes: %v, want too large", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); err == nil {
		t.Errorf("oversized file was written")
	}
	many := makeTar(t, entry{typ: tar.TypeDir, name: "d1/"}, entry{typ: tar.TypeDir, name: "d2/"}, entry{typ: tar.TypeDir, name: "d3/"})
	if err := Extract(context.Background(), dir, bytes.NewReader(many), Options{MaxEntries: 2}); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Errorf("MaxEntries: %v, want too large", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Extract(ctx, dir, bytes.NewReader(many), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
	if err := Extract(context.Background(), dir, strings.NewReader("not a tar archive at all, just text"), Options{}); err == nil {
		t.Errorf("garbage archive accepted")
	}
	check()
}

func TestOwnerAndSpecialBits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir, check := sandbox(t)
	tarball := makeTar(t, entry{typ: tar.TypeReg, name: "suid", body: "x", mode: 0o4755, uid: 1234, gid: 5678})
	must(t, Extract(context.Background(), dir, bytes.NewReader(tarball), Options{SameOwner: true}))
	fi, err := os.Stat(filepath.Join(dir, "suid"))
	must(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1234 || st.Gid != 5678 || fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("owner %d:%d mode %v; want 1234:5678 with setuid", st.Uid, st.Gid, fi.Mode())
	}
	must(t, Extract(context.Background(), dir, bytes.NewReader(tarball), Options{}))
	fi, _ = os.Stat(filepath.Join(dir, "suid"))
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode()&fs.ModeSetuid != 0 {
		t.Errorf("without SameOwner: uid %d mode %v; want 0 without setuid", st.Uid, fi.Mode())
	}
	check()
}

func checkMode(t *testing.T, p string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("%s: %v", p, err)
		return
	}
	if fi.Mode() != want {
		t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestImplicitParents(t *testing.T) {
	dir, check := sandbox(t)
	must(t, Extract(context.Background(), dir, bytes.NewReader(makeTar(t, entry{typ: tar.TypeReg, name: "x/y/z", body: "z"})), Options{}))
	checkMode(t, filepath.Join(dir, "x", "y"), fs.ModeDir|0o755&^umask())
	check()
}

func umask() fs.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return fs.FileMode(m)
}
