package agenttest

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func testFiles(t *testing.T, env Env) {
	c := env.Client(t)
	ctx := ctxT(t)
	d := env.Dir + "/files"
	if err := c.Mkdir(ctx, d+"/a/b", 0o750, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Mkdir(ctx, d+"/a/b", 0, true); err != nil {
		t.Errorf("Mkdir -p of an existing dir: %v", err)
	}
	if err := c.Mkdir(ctx, d+"/a/b", 0, false); !isErr(err, errdefs.ErrAlreadyExists) {
		t.Errorf("Mkdir of an existing dir: %v", err)
	}
	if err := c.Mkdir(ctx, d+"/x/y", 0, false); !isErr(err, errdefs.ErrNotFound) {
		t.Errorf("Mkdir without parents: %v", err)
	}
	fi, err := c.Stat(ctx, d+"/a/b")
	if err != nil || !fi.IsDir || fi.Mode.Perm() != 0o750 || fi.Name != "b" {
		t.Errorf("Stat dir: %+v %v", fi, err)
	}

	// WriteFile creates parents, replaces atomically, keeps mode.
	f := d + "/new/sub/file.txt"
	mustWrite(t, c, f, 0o600, "first")
	mustWrite(t, c, f, 0o640, "second version")
	fi, err = c.Stat(ctx, f)
	if err != nil || fi.IsDir || fi.Size != int64(len("second version")) || fi.Mode != 0o640 || time.Since(fi.ModTime) > time.Minute {
		t.Errorf("Stat file: %+v %v", fi, err)
	}
	data, err := c.ReadFile(ctx, f, 1<<20)
	if err != nil || string(data) != "second version" {
		t.Errorf("ReadFile %q %v", data, err)
	}
	if _, err := c.ReadFile(ctx, f, 3); !isErr(err, errdefs.ErrTooLarge) {
		t.Errorf("ReadFile over max: %v", err)
	}
	if _, err := c.ReadFile(ctx, d+"/a", 100); !isErr(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("ReadFile of a dir: %v", err)
	}
	if _, err := c.ReadFile(ctx, d+"/missing", 100); !isErr(err, errdefs.ErrNotFound) {
		t.Errorf("ReadFile missing: %v", err)
	}
	big := bytes.Repeat([]byte("abcdefgh"), 512<<10) // 4 MiB
	if err := c.WriteFile(ctx, d+"/big", 0, bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadFile(ctx, d+"/big", int64(len(big))); err != nil || !bytes.Equal(got, big) {
		t.Errorf("big file round trip: %d bytes, %v", len(got), err)
	}
	if err := c.WriteFile(ctx, d+"/a", 0, strings.NewReader("x")); !isErr(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("WriteFile over a dir: %v", err)
	}
	// A failing reader aborts the upload and leaves nothing behind.
	if err := c.WriteFile(ctx, d+"/partial", 0, io.MultiReader(strings.NewReader("x"), errReader{})); err == nil {
		t.Errorf("WriteFile with a failing reader succeeded")
	}
	if _, err := c.Stat(ctx, d+"/partial"); !isErr(err, errdefs.ErrNotFound) {
		t.Errorf("partial upload left a file: %v", err)
	}

	RunProcess(t, c, sh("ln -s new/sub/file.txt "+d+"/link"), "")
	list, err := c.ListDir(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name)
		if e.Name == "link" && (e.Link != "new/sub/file.txt" || e.Mode&os.ModeSymlink == 0) {
			t.Errorf("symlink entry %+v", e)
		}
	}
	if strings.Join(names, ",") != "a,big,link,new" {
		t.Errorf("ListDir names %v", names)
	}
	if fi, err := c.Stat(ctx, d+"/link"); err != nil || fi.Link != "new/sub/file.txt" {
		t.Errorf("Stat symlink: %+v %v", fi, err)
	}

	if err := c.Remove(ctx, d+"/new", false); !isErr(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Remove non-empty dir: %v", err)
	}
	if err := c.Remove(ctx, d+"/new", true); err != nil {
		t.Errorf("Remove recursive: %v", err)
	}
	if err := c.Remove(ctx, d+"/new", true); !isErr(err, errdefs.ErrNotFound) {
		t.Errorf("Remove missing: %v", err)
	}
	for _, bad := range []string{"relative/path", d + "/../x", d + "/", ""} {
		if _, err := c.Stat(ctx, bad); !isErr(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Stat(%q): %v, want invalid argument", bad, err)
		}
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrClosedPipe }

func testTarRoundTrip(t *testing.T, env Env) {
	c := env.Client(t)
	ctx := ctxT(t)
	src := env.Dir + "/tarsrc/proj"
	mustWrite(t, c, src+"/a.txt", 0o640, "alpha")
	mustWrite(t, c, src+"/sub/run.sh", 0o755, "#!/bin/sh\necho run\n")
	r := RunProcess(t, c, sh("cd "+src+" && ln -s ../a.txt sub/link && ln a.txt sub/hard"), "")
	if r.Status.Code != 0 {
		t.Fatalf("setup: %+v", r)
	}
	rc, err := c.TarOut(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	archive, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]byte{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names[h.Name] = h.Typeflag
	}
	if len(names) != 6 || names["proj/"] != tar.TypeDir || names["proj/sub/link"] != tar.TypeSymlink ||
		(names["proj/sub/hard"] != tar.TypeLink && names["proj/a.txt"] != tar.TypeLink) {
		t.Errorf("archive entries %v", names)
	}

	dst := env.Dir + "/tardst/new"
	if err := c.TarIn(ctx, dst, bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
	if got, err := c.ReadFile(ctx, dst+"/proj/sub/link", 100); err != nil || string(got) != "alpha" {
		t.Errorf("through symlink: %q %v", got, err)
	}
	fi, err := c.Stat(ctx, dst+"/proj/sub/run.sh")
	if err != nil || fi.Mode != 0o755 {
		t.Errorf("run.sh: %+v %v", fi, err)
	}
	r = RunProcess(t, c, sh("cd "+dst+"/proj && stat -c %h a.txt && readlink sub/link && ./sub/run.sh"), "")
	if r.Stdout != "2\n../a.txt\nrun\n" {
		t.Errorf("extracted tree: %+v", r)
	}
	if _, err := c.TarOut(ctx, env.Dir+"/no-such"); !isErr(err, errdefs.ErrNotFound) {
		t.Errorf("TarOut missing: %v", err)
	}
	// A single file.
	rc, err = c.TarOut(ctx, src+"/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	h, err := tar.NewReader(rc).Next()
	rc.Close()
	if err != nil || h.Name != "a.txt" || h.Size != 5 {
		t.Errorf("single file: %+v %v", h, err)
	}
}

func testHostileTar(t *testing.T, env Env) {
	c := env.Client(t)
	ctx := ctxT(t)
	base := env.Dir + "/hostile"
	mustWrite(t, c, base+"/outside/sentinel", 0o644, "keep")
	archives := map[string][]*tar.Header{
		"dotdot":          {{Typeflag: tar.TypeReg, Name: "../outside/evil"}},
		"absolute":        {{Typeflag: tar.TypeReg, Name: base + "/outside/evil"}},
		"symlink escape":  {{Typeflag: tar.TypeSymlink, Name: "l", Linkname: "../outside"}, {Typeflag: tar.TypeReg, Name: "l/evil"}},
		"hardlink escape": {{Typeflag: tar.TypeLink, Name: "evil", Linkname: "../outside/sentinel"}},
		"symlink overwrite": {{Typeflag: tar.TypeSymlink, Name: "s", Linkname: base + "/outside/sentinel"},
			{Typeflag: tar.TypeReg, Name: "s/x"}},
	}
	for name, hdrs := range archives {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range hdrs {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeReg {
				h.Size = 4
			}
			tw.WriteHeader(h)
			if h.Size > 0 {
				tw.Write([]byte("evil"))
			}
		}
		tw.Close()
		err := c.TarIn(ctx, base+"/in", &buf)
		if !isErr(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: TarIn = %v, want invalid argument", name, err)
		}
	}
	list, err := c.ListDir(ctx, base+"/outside")
	if err != nil || len(list) != 1 || list[0].Name != "sentinel" {
		t.Errorf("outside now holds %+v (%v)", list, err)
	}
	if got, _ := c.ReadFile(ctx, base+"/outside/sentinel", 100); string(got) != "keep" {
		t.Errorf("sentinel = %q", got)
	}
	if err := c.TarIn(ctx, base+"/in", strings.NewReader(strings.Repeat("garbage!", 1000))); err == nil {
		t.Errorf("garbage tar accepted")
	}
}
