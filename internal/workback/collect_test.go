package workback

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// hostState is what Collect must leave alone in a repository.
type hostState struct {
	status, head, branch, index, worktree string
}

func stateOf(t *testing.T, repo string) hostState {
	t.Helper()
	idx, _ := os.ReadFile(filepath.Join(repo, ".git", "index"))
	return hostState{
		status:   git(t, repo, "status", "--porcelain", "--untracked-files=all", "--ignored"),
		head:     git(t, repo, "rev-parse", "HEAD"),
		branch:   read(t, filepath.Join(repo, ".git", "HEAD")),
		index:    string(idx),
		worktree: worktreeFingerprint(t, repo),
	}
}

// worktreeFingerprint fingerprints the working tree less .git.
func worktreeFingerprint(t *testing.T, repo string) string {
	t.Helper()
	var all []string
	ents, _ := os.ReadDir(repo)
	for _, e := range ents {
		if e.Name() != ".git" {
			all = append(all, e.Name()+"="+fingerprint(t, filepath.Join(repo, e.Name())))
		}
	}
	return strings.Join(all, ",")
}

func collectOpts(t *testing.T, name string) CollectOptions {
	return CollectOptions{Name: name, TreeOptions: TreeOptions{Root: "workspace", TempDir: t.TempDir()}}
}

func TestCollectRepo(t *testing.T) {
	repo := newRepo(t, map[string]string{
		"keep.txt":     "unchanged\n",
		"edit.txt":     "before\n",
		"remove.txt":   "to be deleted\n",
		"script.sh":    "#!/bin/sh\necho hi\n",
		".gitignore":   "node_modules/\n*.o\n",
		"src/main.go":  "package main\n",
		"src/old.go":   "package main // old\n",
		"docs/a/b.txt": "deep\n",
	})
	write(t, repo, "dirty.txt", "the user's uncommitted, untracked file\n")
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	ws := sandbox(t, packed(t, src, PackOptions{}))
	before := stateOf(t, repo)

	// The agent's work.
	write(t, ws, "edit.txt", "after\n")
	os.Remove(filepath.Join(ws, "remove.txt"))
	os.RemoveAll(filepath.Join(ws, "docs"))
	write(t, ws, "new/file.txt", "added\n")
	os.Chmod(filepath.Join(ws, "script.sh"), 0o4755) // executable (and setuid, dropped)
	os.Symlink("keep.txt", filepath.Join(ws, "alias"))
	os.Remove(filepath.Join(ws, "src", "old.go"))
	os.Symlink("main.go", filepath.Join(ws, "src", "old.go")) // a file become a symlink
	write(t, ws, "node_modules/dep/index.js", "ignored\n")
	write(t, ws, "main.o", "ignored\n")
	write(t, ws, "keep.o", "ignored, then un-ignored by the agent's .gitignore\n")
	write(t, ws, ".gitignore", "node_modules/\n*.o\n!keep.o\n")
	write(t, ws, "src/.gitignore", "*.tmp\n")
	write(t, ws, "src/x.tmp", "ignored by the agent's new .gitignore\n")
	git(t, ws, "init", "-q") // the agent's own repository: never collected
	write(t, ws, ".git/hooks/post-checkout", "#!/bin/sh\necho pwned\n")

	opts := collectOpts(t, "dev")
	res, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), opts)
	if err != nil {
		t.Fatal(err)
	}
	emptyDir(t, opts.TempDir)
	if res.Branch != "agentkernel/dev" || !res.Changed() || res.Patch != "" {
		t.Fatalf("Collect = %+v", res)
	}
	if after := stateOf(t, repo); after != before {
		t.Fatalf("the repository's working tree, index, HEAD or branch changed:\nbefore %+v\nafter  %+v", before, after)
	}
	if got := strings.TrimSpace(git(t, repo, "rev-parse", "agentkernel/dev")); got != res.Commit {
		t.Fatalf("branch at %s, result says %s", got, res.Commit)
	}
	if parent := strings.TrimSpace(git(t, repo, "rev-parse", "agentkernel/dev^")); parent != src.Head {
		t.Fatalf("parent %s, want HEAD %s", parent, src.Head)
	}
	if who := git(t, repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", "agentkernel/dev"); who != "agentkernel <agentkernel@localhost>|agentkernel <agentkernel@localhost>|agentkernel: work from sandbox dev\n" {
		t.Fatalf("commit: %q", who)
	}
	diff := git(t, repo, "diff", "--name-status", "--no-renames", "HEAD", "agentkernel/dev")
	want := "M\t.gitignore\nA\talias\nA\tdirty.txt\nD\tdocs/a/b.txt\nM\tedit.txt\nA\tkeep.o\nA\tnew/file.txt\nD\tremove.txt\nM\tscript.sh\nA\tsrc/.gitignore\nT\tsrc/old.go\n"
	if diff != want {
		t.Fatalf("git diff HEAD agentkernel/dev:\n%s\nwant:\n%s", diff, want)
	}
	tree := git(t, repo, "ls-tree", "-r", "agentkernel/dev")
	for _, line := range []string{"100755 blob", "script.sh", "120000 blob"} {
		if !strings.Contains(tree, line) {
			t.Fatalf("tree lacks %q:\n%s", line, tree)
		}
	}
	if m := git(t, repo, "ls-tree", "agentkernel/dev", "script.sh"); !strings.HasPrefix(m, "100755 ") {
		t.Fatalf("script.sh: %q", m)
	}
	if m := git(t, repo, "ls-tree", "agentkernel/dev", "alias"); !strings.HasPrefix(m, "120000 ") {
		t.Fatalf("alias: %q", m)
	}
	if got := git(t, repo, "show", "agentkernel/dev:edit.txt"); got != "after\n" {
		t.Fatalf("edit.txt = %q", got)
	}
	wantChanges := []Change{{".gitignore", Modified}, {"alias", Added}, {"dirty.txt", Added}, {"docs/a/b.txt", Deleted}, {"edit.txt", Modified},
		{"keep.o", Added}, {"new/file.txt", Added}, {"remove.txt", Deleted}, {"script.sh", Modified}, {"src/.gitignore", Added}, {"src/old.go", Modified}}
	if len(res.Changes) != len(wantChanges) {
		t.Fatalf("changes %v, want %v", res.Changes, wantChanges)
	}
	for i := range wantChanges {
		if res.Changes[i] != wantChanges[i] {
			t.Fatalf("changes %v, want %v", res.Changes, wantChanges)
		}
	}
	notes := strings.Join(res.Notes, "\n")
	if !strings.Contains(notes, `".git"`) || !strings.Contains(notes, "left out 3 new files") {
		t.Fatalf("notes: %q", res.Notes)
	}
	if !strings.Contains(res.Summary, "agentkernel/dev") || !strings.Contains(res.Summary, "5 added, 4 modified, 2 deleted") {
		t.Fatalf("summary: %q", res.Summary)
	}
	if out := git(t, repo, "fsck", "--no-dangling"); strings.Contains(out, "error") {
		t.Fatalf("fsck: %s", out)
	}

	// Again: the branch exists.
	_, err = Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), collectOpts(t, "dev"))
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "agentkernel/dev") {
		t.Fatalf("second Collect = %v, want ErrAlreadyExists", err)
	}
	// Unless replacing.
	write(t, ws, "edit.txt", "after, again\n")
	opts = collectOpts(t, "dev")
	opts.Replace = true
	res2, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), opts)
	if err != nil || res2.Commit == res.Commit {
		t.Fatalf("Collect(replace) = %+v, %v", res2, err)
	}
	if got := git(t, repo, "show", "agentkernel/dev:edit.txt"); got != "after, again\n" {
		t.Fatalf("replaced edit.txt = %q", got)
	}
	// Never a checked-out branch.
	git(t, repo, "worktree", "add", "-q", filepath.Join(t.TempDir(), "wt"), "agentkernel/dev")
	_, err = Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), opts)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Collect(replace a checked-out branch) = %v", err)
	}
	if after := stateOf(t, repo); after != before {
		t.Fatalf("the repository changed:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestCollectNoChange(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "a\n", "b/c.txt": "c\n"})
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	ws := sandbox(t, packed(t, src, PackOptions{}))
	write(t, ws, "build/out", "ignored by the user's info/exclude\n")
	write(t, repo, ".git/info/exclude", "build/\n")
	objects := fingerprint(t, filepath.Join(repo, ".git", "objects"))
	res, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), collectOpts(t, "idle"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed() || res.Branch != "" || res.Commit != "" || !strings.Contains(res.Summary, "nothing") {
		t.Fatalf("Collect = %+v", res)
	}
	if _, err := gitErr(repo, nil, "rev-parse", "--verify", "agentkernel/idle"); err == nil {
		t.Fatal("a branch was made although nothing changed")
	}
	if fingerprint(t, filepath.Join(repo, ".git", "objects")) != objects {
		t.Fatal("objects were added although nothing changed")
	}
}

func TestCollectSubdir(t *testing.T) {
	repo := newRepo(t, map[string]string{"top.txt": "top\n", "app/a.txt": "a\n", "app/b.txt": "b\n", "other/o.txt": "o\n"})
	write(t, repo, "top.txt", "an uncommitted edit outside the directory\n")
	src, err := Snapshot(ctx, filepath.Join(repo, "app"))
	if err != nil || src.Subdir != "app" {
		t.Fatalf("Snapshot = %+v, %v", src, err)
	}
	ws := sandbox(t, packed(t, src, PackOptions{}))
	write(t, ws, "a.txt", "a, edited\n")
	os.Remove(filepath.Join(ws, "b.txt"))
	write(t, ws, "c.txt", "c\n")
	res, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), collectOpts(t, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	want := "M\tapp/a.txt\nD\tapp/b.txt\nA\tapp/c.txt\n"
	if got := git(t, repo, "diff", "--name-status", "HEAD", res.Branch); got != want {
		t.Fatalf("diff:\n%s\nwant:\n%s", got, want)
	}
	if got := git(t, repo, "show", res.Branch+":top.txt"); got != "top\n" {
		t.Fatalf("top.txt = %q: outside the directory, HEAD's version stays", got)
	}
}

func TestCollectEmptyRepo(t *testing.T) {
	repo := filepath.Join(t.TempDir(), "repo")
	git(t, "", "init", "-q", "-b", "main", repo)
	write(t, repo, "first.txt", "the user's first file, never committed\n")
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	ws := sandbox(t, packed(t, src, PackOptions{}))
	write(t, ws, "second.txt", "the agent's\n")
	res, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), collectOpts(t, "first"))
	if err != nil {
		t.Fatal(err)
	}
	if got := git(t, repo, "ls-tree", "-r", "--name-only", res.Branch); got != "first.txt\nsecond.txt\n" {
		t.Fatalf("tree: %q", got)
	}
	if _, err := gitErr(repo, nil, "rev-parse", "--verify", "-q", res.Branch+"^"); err == nil {
		t.Fatal("the first commit has a parent")
	}
	if _, err := gitErr(repo, nil, "rev-parse", "--verify", "-q", "HEAD"); err == nil {
		t.Fatal("HEAD was made")
	}
}

func TestCollectHardLinksAndRoot(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "a\n"})
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	ws := sandbox(t, packed(t, src, PackOptions{}))
	write(t, ws, "b.txt", "b\n")
	if err := os.Link(filepath.Join(ws, "b.txt"), filepath.Join(ws, "c.txt")); err != nil {
		t.Fatal(err)
	}
	// safetar.Write stores c.txt as a hard link to b.txt.
	res, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), collectOpts(t, "root"))
	if err != nil {
		t.Fatal(err)
	}
	if got := git(t, repo, "show", res.Branch+":c.txt"); got != "b\n" {
		t.Fatalf("c.txt = %q", got)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "hard link") {
		t.Fatalf("notes %q", res.Notes)
	}
	// Entries outside the root given are refused.
	opts := collectOpts(t, "noroot")
	opts.Root = "elsewhere"
	if _, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), opts); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Collect with the wrong root = %v", err)
	}
	// Pack's layout (no root) works as well.
	opts = collectOpts(t, "packed")
	opts.Root = ""
	if res, err = Collect(ctx, src, bytes.NewReader(packed(t, Source{Dir: ws}, PackOptions{})), opts); err != nil || res.Commit == "" {
		t.Fatalf("Collect(Pack's layout) = %+v, %v", res, err)
	}
}

func TestCollectSubmodule(t *testing.T) {
	lib := newRepo(t, map[string]string{"lib.txt": "lib\n"})
	repo := newRepo(t, map[string]string{"a.txt": "a\n"})
	git(t, repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, "lib")
	git(t, repo, "commit", "-q", "-m", "submodule")
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	stream := packed(t, src, PackOptions{})
	if got := names(t, stream); !equal(got, []string{".gitmodules", "a.txt", "lib/"}) {
		t.Fatalf("packed %q", got)
	}
	ws := sandbox(t, stream)
	write(t, ws, "lib/extra.txt", "put in the submodule\n")
	write(t, ws, "a.txt", "edited\n")
	res, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), collectOpts(t, "sm"))
	if err != nil {
		t.Fatal(err)
	}
	if got := git(t, repo, "diff", "--name-status", "HEAD", res.Branch); got != "M\ta.txt\n" {
		t.Fatalf("diff: %q", got)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), `submodule "lib"`) {
		t.Fatalf("notes %q", res.Notes)
	}
}

func TestCollectBadNames(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "a\n"})
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "a/b", "-x", "x..y", "x.lock", "by-uuid"} {
		_, err := Collect(ctx, src, bytes.NewReader(nil), collectOpts(t, name))
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Collect(name %q) = %v", name, err)
		}
	}
}

// TestCollectLinkedWorktreeAndSHA256: a source in a linked worktree (its
// own git directory, the objects and refs in the main one), and a
// repository hashed with SHA-256.
func TestCollectLinkedWorktreeAndSHA256(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "a\n"})
	wt := filepath.Join(t.TempDir(), "wt")
	git(t, repo, "worktree", "add", "-q", "-b", "feature", wt)
	src, err := Snapshot(ctx, wt)
	if err != nil || src.Branch != "feature" || src.CommonDir != filepath.Join(repo, ".git") || src.GitDir == src.CommonDir {
		t.Fatalf("Snapshot(linked worktree) = %+v, %v", src, err)
	}
	ws := sandbox(t, packed(t, src, PackOptions{}))
	write(t, ws, "b.txt", "b\n")
	res, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), collectOpts(t, "wt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := git(t, repo, "diff", "--name-status", "main", res.Branch); got != "A\tb.txt\n" {
		t.Fatalf("diff in the main worktree: %q", got)
	}

	sha := filepath.Join(t.TempDir(), "sha256")
	if out, err := gitErr("", nil, "init", "-q", "--object-format=sha256", sha); err != nil {
		t.Skipf("no SHA-256 repositories in this git: %v %s", err, out)
	}
	write(t, sha, "a.txt", "a\n")
	git(t, sha, "add", "a.txt")
	git(t, sha, "commit", "-q", "-m", "one")
	if src, err = Snapshot(ctx, sha); err != nil || src.ObjectFormat != "sha256" || len(src.Head) != 64 {
		t.Fatalf("Snapshot(sha256) = %+v, %v", src, err)
	}
	ws = sandbox(t, packed(t, src, PackOptions{}))
	write(t, ws, "a.txt", "b\n")
	if res, err = Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), collectOpts(t, "sha")); err != nil {
		t.Fatal(err)
	}
	if got := git(t, sha, "show", res.Branch+":a.txt"); got != "b\n" || len(res.Commit) != 64 {
		t.Fatalf("a.txt = %q, commit %s", got, res.Commit)
	}
	if out := git(t, sha, "fsck"); strings.Contains(out, "error") {
		t.Fatalf("fsck: %s", out)
	}
}

func TestCollectBadSource(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "a\n"})
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, mutate := range []func(*Source){
		func(s *Source) { s.Head = "--output=/tmp/x" },
		func(s *Source) { s.Head = strings.Repeat("a", 39) },
		func(s *Source) { s.ObjectFormat = "md5" },
		func(s *Source) { s.Subdir = "../up" },
		func(s *Source) { s.Subdir = ".git" },
		func(s *Source) { s.Dir = "" },
	} {
		bad := src
		mutate(&bad)
		if _, err := Collect(ctx, bad, bytes.NewReader(nil), collectOpts(t, "bad")); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Collect(%+v) = %v", bad, err)
		}
		if _, err := Diff(ctx, bad, bytes.NewReader(nil), TreeOptions{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Diff(%+v) = %v", bad, err)
		}
	}
}
