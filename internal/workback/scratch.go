package workback

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// scratch is a private bare repository in a temporary directory. Every
// object, index and diff is made there, with configuration this package
// wrote and none of the host repository's: the host's objects are only
// read, through objects/info/alternates. Git finds an object that already
// exists in an alternate and does not write it again, so the scratch
// repository ends up holding only new objects.
type scratch struct {
	work   string // the temporary directory: every command's working directory
	gitDir string
}

// newScratch makes a scratch repository in work with the given object
// format, borrowing the objects of alternate ("" for none).
func newScratch(ctx context.Context, work, format, alternate string) (*scratch, error) {
	if strings.ContainsAny(work, "\n\x00") {
		return nil, fmt.Errorf("%w: temporary directory %q has a newline", errdefs.ErrInvalidArgument, work)
	}
	if format == "" {
		format = "sha1"
	}
	s := &scratch{work: work, gitDir: filepath.Join(work, "repo.git")}
	if _, err := (gitRun{dir: work, args: []string{"init", "--quiet", "--bare", "--template=", "--object-format=" + format, s.gitDir}}).run(ctx); err != nil {
		return nil, err
	}
	// Keep objects loose, whatever their size, for migrate.
	cfg, err := os.OpenFile(filepath.Join(s.gitDir, "config"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	_, err = io.WriteString(cfg, "[core]\n\tbigFileThreshold = 64g\n\tprotectNTFS = true\n\tprotectHFS = true\n")
	if cerr := cfg.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if alternate != "" {
		if strings.ContainsAny(alternate, "\n\x00") {
			return nil, fmt.Errorf("%w: objects directory %q has a newline", errdefs.ErrInvalidArgument, alternate)
		}
		info := filepath.Join(s.gitDir, "objects", "info")
		if err := os.MkdirAll(info, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(info, "alternates"), []byte(alternate+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// git runs a git command in the scratch repository.
func (s *scratch) git(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error) {
	return gitRun{dir: s.work, env: append([]string{"GIT_DIR=" + s.gitDir}, env...), stdin: stdin, args: args}.run(ctx)
}

// entry is one entry of a git tree, as ls-tree -r lists it.
type entry struct {
	mode, oid, path string
}

// hashFiles writes the staged files as blobs, byte for byte (no filters,
// no end-of-line conversion), and returns their ids in order.
func (s *scratch) hashFiles(ctx context.Context, files []string) ([]string, error) {
	if len(files) == 0 {
		return nil, nil
	}
	out, err := s.git(ctx, strings.NewReader(strings.Join(files, "\n")+"\n"), nil, "hash-object", "-w", "--no-filters", "--stdin-paths")
	if err != nil {
		return nil, err
	}
	oids := strings.Fields(string(out))
	if len(oids) != len(files) {
		return nil, fmt.Errorf("git hash-object: %d ids for %d files", len(oids), len(files))
	}
	return oids, nil
}

// lsTree lists a tree recursively (submodules as gitlink entries).
func (s *scratch) lsTree(ctx context.Context, treeish string) ([]entry, error) {
	out, err := s.git(ctx, nil, nil, "ls-tree", "-r", "-z", "--full-tree", treeish)
	if err != nil {
		return nil, err
	}
	recs := splitNUL(out)
	entries := make([]entry, 0, len(recs))
	for _, rec := range recs {
		meta, name, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			return nil, fmt.Errorf("git ls-tree: unexpected record %.200q", rec)
		}
		entries = append(entries, entry{mode: f[0], oid: f[2], path: name})
	}
	return entries, nil
}

// writeTree makes a tree object of entries through a temporary index and
// checks that git kept every path (update-index leaves out a path it
// considers unsafe, such as one through .git, with only a warning).
func (s *scratch) writeTree(ctx context.Context, entries []entry, index string) (string, error) {
	env := []string{"GIT_INDEX_FILE=" + index}
	var in bytes.Buffer
	for _, e := range entries {
		fmt.Fprintf(&in, "%s %s\t%s\x00", e.mode, e.oid, e.path)
	}
	if _, err := s.git(ctx, &in, env, "update-index", "-z", "--index-info"); err != nil {
		return "", err
	}
	out, err := s.git(ctx, nil, env, "write-tree")
	if err != nil {
		return "", err
	}
	tree := strings.TrimSpace(string(out))
	out, err = s.git(ctx, nil, nil, "ls-tree", "-r", "-z", "--full-tree", "--name-only", tree)
	if err != nil {
		return "", err
	}
	kept := map[string]bool{}
	for _, p := range splitNUL(out) {
		kept[p] = true
	}
	var refused []string
	for _, e := range entries {
		if !kept[e.path] {
			refused = append(refused, e.path)
		}
	}
	if len(refused) > 0 {
		sort.Strings(refused)
		if len(refused) > 10 {
			refused = append(refused[:10], "...")
		}
		return "", fmt.Errorf("%w: git refuses these paths in a tree: %q", errdefs.ErrInvalidArgument, refused)
	}
	return tree, nil
}

// emptyTree writes the empty tree and returns its id.
func (s *scratch) emptyTree(ctx context.Context) (string, error) {
	out, err := s.git(ctx, strings.NewReader(""), nil, "mktree")
	return strings.TrimSpace(string(out)), err
}

// commitTree makes a commit of tree with parent ("" for none).
func (s *scratch) commitTree(ctx context.Context, tree, parent, message string, id Identity) (string, error) {
	args := []string{"commit-tree", tree, "--no-gpg-sign"}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	env := []string{
		"GIT_AUTHOR_NAME=" + id.Name, "GIT_AUTHOR_EMAIL=" + id.Email,
		"GIT_COMMITTER_NAME=" + id.Name, "GIT_COMMITTER_EMAIL=" + id.Email,
	}
	out, err := s.git(ctx, strings.NewReader(message), env, args...)
	return strings.TrimSpace(string(out)), err
}

// changes lists what differs between two trees.
func (s *scratch) changes(ctx context.Context, from, to string) ([]Change, error) {
	out, err := s.git(ctx, nil, nil, "diff-tree", "-r", "-z", "--no-renames", "--name-status", from, to)
	if err != nil {
		return nil, err
	}
	recs := splitNUL(out)
	if len(recs)%2 != 0 {
		return nil, fmt.Errorf("git diff-tree: unexpected output %.200q", out)
	}
	var cs []Change
	for i := 0; i < len(recs); i += 2 {
		k := Modified
		switch recs[i] {
		case "A":
			k = Added
		case "D":
			k = Deleted
		}
		cs = append(cs, Change{Path: recs[i+1], Kind: k})
	}
	return cs, nil
}

// patch writes the unified diff between two trees to w ("a/" and "b/"
// prefixes; binary, for a patch that git apply takes whole).
func (s *scratch) patch(ctx context.Context, from, to string, binary bool, w io.Writer) error {
	args := []string{"diff-tree", "-r", "-p", "--no-renames", "--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/"}
	if binary {
		args = append(args, "--binary")
	}
	_, err := gitRun{dir: s.work, env: []string{"GIT_DIR=" + s.gitDir}, stdout: w, args: append(args, from, to)}.run(ctx)
	return err
}

// catBlob writes a blob to a new file.
func (s *scratch) catBlob(ctx context.Context, oid, file string) error {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = gitRun{dir: s.work, env: []string{"GIT_DIR=" + s.gitDir}, stdout: f, args: []string{"cat-file", "blob", oid}}.run(ctx)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ignored returns which of paths the ignore rules of worktree (its
// .gitignore files), info/exclude and excludesFile ignore.
func (s *scratch) ignored(ctx context.Context, worktree, excludesFile string, paths []string) (map[string]bool, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	var args []string
	if excludesFile != "" {
		args = []string{"-c", "core.excludesFile=" + excludesFile}
	}
	args = append(args, "check-ignore", "--stdin", "-z", "--no-index")
	out, err := gitRun{
		dir:   s.work,
		env:   []string{"GIT_DIR=" + s.gitDir, "GIT_WORK_TREE=" + worktree},
		stdin: strings.NewReader(strings.Join(paths, "\x00") + "\x00"),
		args:  args,
	}.run(ctx)
	if err != nil && exitCode(err) != 1 { // 1: none ignored
		return nil, err
	}
	set := map[string]bool{}
	for _, p := range splitNUL(out) {
		set[p] = true
	}
	return set, nil
}
