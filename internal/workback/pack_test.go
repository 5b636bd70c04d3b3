package workback

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestSnapshot(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "a\n", "sub/dir/b.txt": "b\n"})
	head := strings.TrimSpace(git(t, repo, "rev-parse", "HEAD"))

	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if !src.Git || src.TopLevel != repo || src.Head != head || src.Branch != "main" || src.Subdir != "" ||
		src.GitDir != filepath.Join(repo, ".git") || src.CommonDir != filepath.Join(repo, ".git") || src.ObjectFormat != "sha1" {
		t.Fatalf("Snapshot(top) = %+v", src)
	}
	// Through a relative path and a symlink, in a subdirectory.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Join(repo, "sub"), link); err != nil {
		t.Fatal(err)
	}
	src, err = Snapshot(ctx, filepath.Join(link, "dir"))
	if err != nil {
		t.Fatal(err)
	}
	if src.Dir != filepath.Join(repo, "sub", "dir") || src.Subdir != "sub/dir" || src.TopLevel != repo {
		t.Fatalf("Snapshot(sub/dir) = %+v", src)
	}
	// Detached HEAD.
	git(t, repo, "checkout", "-q", "--detach")
	if src, err = Snapshot(ctx, repo); err != nil || src.Branch != "" || src.Head != head {
		t.Fatalf("Snapshot(detached) = %+v, %v", src, err)
	}
	// No commit yet.
	empty := filepath.Join(t.TempDir(), "empty")
	git(t, "", "init", "-q", "-b", "trunk", empty)
	if src, err = Snapshot(ctx, empty); err != nil || !src.Git || src.Head != "" || src.Branch != "trunk" {
		t.Fatalf("Snapshot(empty repo) = %+v, %v", src, err)
	}
	// A plain directory.
	plain := t.TempDir()
	if src, err = Snapshot(ctx, plain); err != nil || src.Git || src.Dir != plain || src.TopLevel != "" {
		t.Fatalf("Snapshot(plain) = %+v, %v", src, err)
	}
	// Inside .git, a file, nothing.
	if _, err := Snapshot(ctx, filepath.Join(repo, ".git")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Snapshot(.git) = %v", err)
	}
	if _, err := Snapshot(ctx, filepath.Join(repo, "a.txt")); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Snapshot(file) = %v", err)
	}
	if _, err := Snapshot(ctx, filepath.Join(repo, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Snapshot(missing) = %v", err)
	}
}

func TestPackRepo(t *testing.T) {
	repo := newRepo(t, map[string]string{
		"committed.txt": "committed\n",
		"modified.txt":  "old\n",
		"deleted.txt":   "gone soon\n",
		".gitignore":    "*.log\nbuild/\n",
		"dir/inner.txt": "inner\n",
	})
	if err := os.Symlink("committed.txt", filepath.Join(repo, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(repo, "outside")); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "add", "link", "outside")
	git(t, repo, "commit", "-q", "-m", "links")
	write(t, repo, "modified.txt", "new, uncommitted\n")
	os.Remove(filepath.Join(repo, "deleted.txt"))
	write(t, repo, "untracked.txt", "untracked\n")
	write(t, repo, "debug.log", "ignored\n")
	write(t, repo, "build/out.bin", "ignored\n")
	write(t, repo, "secret.env", "ignored by the user's global ignore file\n")
	write(t, os.Getenv("HOME"), ".config/git/ignore", "secret.env\n")
	defer os.Remove(filepath.Join(os.Getenv("HOME"), ".config/git/ignore"))
	git(t, repo, "init", "-q", "nested")
	write(t, repo, "nested/file", "in a nested repository\n")
	os.Chmod(filepath.Join(repo, "committed.txt"), 0o4755) // setuid must not survive

	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	stream := packed(t, src, PackOptions{})
	want := []string{".gitignore", "committed.txt", "dir/", "dir/inner.txt", "link -> committed.txt", "modified.txt", "outside -> /etc", "untracked.txt"}
	if got := names(t, stream); !equal(got, want) {
		t.Fatalf("packed %q, want %q", got, want)
	}
	ws := sandbox(t, stream)
	if got := read(t, filepath.Join(ws, "modified.txt")); got != "new, uncommitted\n" {
		t.Fatalf("modified.txt = %q: the working tree's version must go in", got)
	}
	fi, err := os.Stat(filepath.Join(ws, "committed.txt"))
	if err != nil || fi.Mode().Perm() != 0o755 || fi.Mode()&os.ModeSetuid != 0 {
		t.Fatalf("committed.txt: %v %v", fi.Mode(), err)
	}
	tr := tar.NewReader(bytes.NewReader(stream))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if h.Uid != 0 || h.Gid != 0 || h.Mode&^0o777 != 0 {
			t.Fatalf("%s: uid %d gid %d mode %o", h.Name, h.Uid, h.Gid, h.Mode)
		}
	}

	// In a subdirectory: only what is below it, relative to it.
	sub, err := Snapshot(ctx, filepath.Join(repo, "dir"))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, packed(t, sub, PackOptions{UID: 1000, GID: 1000})); !equal(got, []string{"inner.txt"}) {
		t.Fatalf("packed dir/: %q", got)
	}
}

func TestPackRefusesSparseCheckout(t *testing.T) {
	repo := newRepo(t, map[string]string{"a": "a", "b": "b"})
	git(t, repo, "update-index", "--skip-worktree", "b")
	os.Remove(filepath.Join(repo, "b"))
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := Pack(ctx, src, io.Discard, PackOptions{}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Pack(sparse) = %v", err)
	}
}

func TestPackPlainDir(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.txt", "a\n")
	write(t, dir, "sub/b.txt", "b\n")
	write(t, dir, "nested/.git/HEAD", "a repository inside\n")
	write(t, dir, "nested/c.txt", "c\n")
	os.Mkdir(filepath.Join(dir, "empty"), 0o700)
	os.Symlink("/etc/passwd", filepath.Join(dir, "abs"))
	os.Symlink("../../..", filepath.Join(dir, "sub", "up"))
	os.Symlink("/etc", filepath.Join(dir, "etc"))
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := Snapshot(ctx, dir)
	if err != nil || src.Git {
		t.Fatalf("Snapshot = %+v, %v", src, err)
	}
	src.Baseline = filepath.Join(t.TempDir(), "baseline.tar")
	stream := packed(t, src, PackOptions{})
	want := []string{"a.txt", "abs -> /etc/passwd", "empty/", "etc -> /etc", "nested/", "nested/c.txt", "sub/", "sub/b.txt", "sub/up -> ../../.."}
	if got := names(t, stream); !equal(got, want) {
		t.Fatalf("packed %q, want %q", got, want)
	}
	if b, err := os.ReadFile(src.Baseline); err != nil || !bytes.Equal(b, stream) {
		t.Fatalf("baseline: %d bytes, %v; want a copy of the stream", len(b), err)
	}
}

func TestPackLimits(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c", "d"} {
		write(t, dir, n, strings.Repeat("x", 100))
	}
	for _, lim := range []Limits{{MaxEntries: 3}, {MaxFileBytes: 99}, {MaxBytes: 399}} {
		err := Pack(ctx, Source{Dir: dir}, io.Discard, PackOptions{Limits: lim})
		if !errors.Is(err, errdefs.ErrTooLarge) {
			t.Errorf("Pack with %+v = %v, want ErrTooLarge", lim, err)
		}
	}
	if err := Pack(ctx, Source{Dir: dir}, io.Discard, PackOptions{Limits: Limits{MaxEntries: 4, MaxBytes: 400, MaxFileBytes: 100}}); err != nil {
		t.Errorf("Pack at the limits: %v", err)
	}
}
