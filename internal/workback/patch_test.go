package workback

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/safetar"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestCollectPlainDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "proj")
	write(t, dir, "a.txt", "one\ntwo\nthree\n")
	write(t, dir, "b.txt", "to be deleted\n")
	write(t, dir, "sub/c.sh", "echo c\n")
	write(t, dir, "bin.dat", "\x00\x01\x02binary\x00")
	os.Symlink("a.txt", filepath.Join(dir, "link"))
	src, err := Snapshot(ctx, dir)
	if err != nil || src.Git {
		t.Fatalf("Snapshot = %+v, %v", src, err)
	}
	state := t.TempDir()
	src.Baseline = filepath.Join(state, "baseline.tar")
	ws := sandbox(t, packed(t, src, PackOptions{}))
	original := sandbox(t, packed(t, Source{Dir: dir}, PackOptions{}))

	// The user goes on editing the host directory; the patch is still
	// against what the sandbox started from.
	write(t, dir, "a.txt", "the user's later edit\n")

	write(t, ws, "a.txt", "one\n2\nthree\n")
	os.Remove(filepath.Join(ws, "b.txt"))
	write(t, ws, "sub/d.txt", "new\n")
	os.Chmod(filepath.Join(ws, "sub", "c.sh"), 0o755)
	write(t, ws, "bin.dat", "\x00\x01\x02changed\x00")
	os.Remove(filepath.Join(ws, "link"))
	os.Symlink("sub/d.txt", filepath.Join(ws, "link"))
	git(t, ws, "init", "-q") // never part of the patch

	patchPath := filepath.Join(state, "dev.patch")
	opts := collectOpts(t, "dev")
	opts.PatchPath = patchPath
	hostBefore := fingerprint(t, dir)
	res, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), opts)
	if err != nil {
		t.Fatal(err)
	}
	emptyDir(t, opts.TempDir)
	if fingerprint(t, dir) != hostBefore {
		t.Fatal("Collect changed the host directory")
	}
	if res.Patch != patchPath || res.Branch != "" || res.Commit != "" || !strings.Contains(res.Summary, patchPath) {
		t.Fatalf("Collect = %+v", res)
	}
	want := []Change{{"a.txt", Modified}, {"b.txt", Deleted}, {"bin.dat", Modified}, {"link", Modified}, {"sub/c.sh", Modified}, {"sub/d.txt", Added}}
	if len(res.Changes) != len(want) {
		t.Fatalf("changes %v, want %v", res.Changes, want)
	}
	for i := range want {
		if res.Changes[i] != want[i] {
			t.Fatalf("changes %v, want %v", res.Changes, want)
		}
	}
	patch := read(t, patchPath)
	for _, s := range []string{
		"diff --git a/a.txt b/a.txt\n", " one\n-two\n+2\n three\n",
		"diff --git a/b.txt b/b.txt\ndeleted file mode 100644\n", "-to be deleted\n",
		"diff --git a/sub/c.sh b/sub/c.sh\nold mode 100644\nnew mode 100755\n",
		"diff --git a/sub/d.txt b/sub/d.txt\nnew file mode 100644\n", "+new\n",
		"diff --git a/link b/link\n", "-a.txt\n\\ No newline at end of file\n+sub/d.txt\n",
		"GIT binary patch",
	} {
		if !strings.Contains(patch, s) {
			t.Errorf("the patch lacks %q:\n%s", s, patch)
		}
	}
	if strings.Contains(patch, ".git/") {
		t.Errorf("the patch touches .git:\n%s", patch)
	}
	// It applies to the directory as it was and gives the sandbox's tree.
	if out, err := gitErr(original, nil, "apply", patchPath); err != nil {
		t.Fatalf("git apply: %v\n%s", err, out)
	}
	os.RemoveAll(filepath.Join(ws, ".git"))
	if fingerprint(t, original) != fingerprint(t, ws) {
		t.Fatal("the patched directory differs from the sandbox's")
	}

	// The patch file is not overwritten, unless asked.
	if _, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), opts); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("Collect over an existing patch = %v", err)
	}
	opts.Replace = true
	if _, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), opts); err != nil {
		t.Fatal(err)
	}
	// Without a patch path: refused.
	opts.PatchPath = ""
	if _, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), opts); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Collect without a patch path = %v", err)
	}

	// Without a baseline, against the directory as it is now.
	noBase := Source{Dir: dir}
	opts = collectOpts(t, "now")
	opts.PatchPath = filepath.Join(state, "now.patch")
	if res, err = Collect(ctx, noBase, bytes.NewReader(tarOf(t, ws)), opts); err != nil {
		t.Fatal(err)
	}
	if p := read(t, opts.PatchPath); !strings.Contains(p, "-the user's later edit\n") {
		t.Fatalf("patch against the directory as it is now:\n%s", p)
	}

	// Nothing changed: no patch.
	opts.PatchPath = filepath.Join(state, "none.patch")
	res, err = Collect(ctx, src, bytes.NewReader(packed(t, Source{Dir: sandbox(t, readBytes(t, src.Baseline))}, PackOptions{})), func() CollectOptions {
		o := opts
		o.Root = ""
		return o
	}())
	if err != nil || res.Changed() || res.Patch != "" {
		t.Fatalf("Collect(unchanged) = %+v, %v", res, err)
	}
	if _, err := os.Stat(opts.PatchPath); !os.IsNotExist(err) {
		t.Fatalf("a patch was written for no change: %v", err)
	}
}

func readBytes(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDiff(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "one\ntwo\n", "b.txt": "b\n"})
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	ws := sandbox(t, packed(t, src, PackOptions{}))
	objects := fingerprint(t, filepath.Join(repo, ".git", "objects"))
	opts := TreeOptions{Root: "workspace", TempDir: t.TempDir()}

	if d, err := Diff(ctx, src, bytes.NewReader(tarOf(t, ws)), opts); err != nil || d != "" {
		t.Fatalf("Diff(unchanged) = %q, %v", d, err)
	}
	write(t, ws, "a.txt", "one\n2\n")
	os.Remove(filepath.Join(ws, "b.txt"))
	write(t, ws, "c.bin", "\x00binary")
	d, err := Diff(ctx, src, bytes.NewReader(tarOf(t, ws)), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"diff --git a/a.txt b/a.txt\n", " one\n-two\n+2\n", "diff --git a/b.txt b/b.txt\ndeleted file mode 100644\n", "Binary files /dev/null and b/c.bin differ"} {
		if !strings.Contains(d, s) {
			t.Errorf("the diff lacks %q:\n%s", s, d)
		}
	}
	emptyDir(t, opts.TempDir)
	if fingerprint(t, filepath.Join(repo, ".git", "objects")) != objects {
		t.Fatal("Diff wrote objects into the repository")
	}
	if _, err := gitErr(repo, nil, "rev-parse", "--verify", "-q", "agentkernel/x"); err == nil {
		t.Fatal("Diff made a branch")
	}

	// A plain directory: against its baseline.
	dir := t.TempDir()
	write(t, dir, "x.txt", "x\n")
	plain := Source{Dir: dir, Baseline: filepath.Join(t.TempDir(), "base.tar")}
	pws := sandbox(t, packed(t, plain, PackOptions{}))
	write(t, pws, "x.txt", "y\n")
	d, err = Diff(ctx, plain, bytes.NewReader(tarOf(t, pws)), opts)
	if err != nil || !strings.Contains(d, "diff --git a/x.txt b/x.txt\n") || !strings.Contains(d, "-x\n+y\n") {
		t.Fatalf("Diff(plain) = %q, %v", d, err)
	}
	// A missing baseline is an error, not a diff against nothing.
	os.Remove(plain.Baseline)
	if _, err := Diff(ctx, plain, bytes.NewReader(tarOf(t, pws)), opts); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Diff(no baseline file) = %v", err)
	}
}

// TestCollectGoneHead: the commit the sandbox started from has vanished
// (a rewritten history, pruned).
func TestCollectGoneHead(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "a\n"})
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	ws := sandbox(t, packed(t, src, PackOptions{}))
	write(t, ws, "a.txt", "b\n")
	src.Head = strings.Repeat("1", 40)
	var b bytes.Buffer
	if err := safetar.Write(ctx, &b, ws); err != nil {
		t.Fatal(err)
	}
	if _, err := Collect(ctx, src, &b, collectOpts(t, "gone")); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Collect = %v", err)
	}
}
