package workback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/agentkernel/agentkernel/internal/safetar"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TreeOptions say how to read a sandbox's tree. The zero value is usable.
type TreeOptions struct {
	Limits
	// Root is a leading directory under which every entry of the stream
	// must be, stripped before use: "workspace" (or "/workspace") for a
	// tar of /workspace made by safetar.Write (the agent's TarOut), whose
	// names start with the directory's base name. "" means the names are
	// relative to the workspace itself, as Pack writes them.
	Root string
	// TempDir is where the temporary files go (removed before returning);
	// "" means os.TempDir(). It needs room for the sandbox's files.
	TempDir string
}

// job is one Collect or Diff: a private temporary directory, a scratch
// repository in it, and the two trees to compare.
type job struct {
	src      Source
	dir      string
	scratch  *scratch
	notes    notes
	from, to string // tree ids: before the sandbox, and the sandbox's
}

// prepare reads the sandbox's tree and builds both trees. The caller
// closes the job.
func prepare(ctx context.Context, src Source, r io.Reader, opts TreeOptions) (*job, error) {
	if src.Dir == "" {
		return nil, fmt.Errorf("%w: the source has no directory", errdefs.ErrInvalidArgument)
	}
	if sub, err := safetar.CleanName(src.Subdir); err != nil || sub != src.Subdir || hasGitComponent(sub) {
		return nil, fmt.Errorf("%w: bad source subdirectory %q", errdefs.ErrInvalidArgument, src.Subdir)
	}
	if src.Git && !validHead(src.ObjectFormat, src.Head) {
		return nil, fmt.Errorf("%w: bad source commit %.80q (object format %.20q)", errdefs.ErrInvalidArgument, src.Head, src.ObjectFormat)
	}
	dir, err := os.MkdirTemp(opts.TempDir, "agentkernel-workback-")
	if err != nil {
		return nil, err
	}
	j := &job{src: src, dir: dir}
	if err := j.build(ctx, r, opts); err != nil {
		j.close()
		return nil, err
	}
	return j, nil
}

func (j *job) close() { os.RemoveAll(j.dir) }

func (j *job) build(ctx context.Context, r io.Reader, opts TreeOptions) error {
	stage := filepath.Join(j.dir, "new")
	if err := os.Mkdir(stage, 0o700); err != nil {
		return err
	}
	t, err := readTree(ctx, r, opts.Root, opts.Limits, stage, &j.notes)
	if err != nil {
		return fmt.Errorf("the sandbox's tree: %w", err)
	}
	if j.src.Git {
		return j.buildGit(ctx, t)
	}
	return j.buildPlain(ctx, t, opts)
}

// buildGit compares HEAD's tree with HEAD's tree in which the source's
// directory is replaced by the sandbox's tree (less new files that the
// ignore rules ignore; submodules stay as they are in HEAD).
func (j *job) buildGit(ctx context.Context, t *tree) error {
	objects := filepath.Join(j.src.CommonDir, "objects")
	if fi, err := os.Stat(objects); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: the repository of %s is gone (no %s)", errdefs.ErrFailedPrecondition, j.src.Dir, objects)
	}
	s, err := newScratch(ctx, j.dir, j.src.ObjectFormat, objects)
	if err != nil {
		return err
	}
	j.scratch = s
	var base []entry
	if j.src.Head == "" {
		j.from, err = s.emptyTree(ctx)
	} else {
		var out []byte
		out, err = s.git(ctx, nil, nil, "rev-parse", "--verify", "--quiet", j.src.Head+"^{tree}")
		if exitCode(err) == 1 {
			return fmt.Errorf("%w: commit %s, which the sandbox was made from, is no longer in the repository", errdefs.ErrFailedPrecondition, j.src.Head)
		}
		if err == nil {
			j.from = strings.TrimSpace(string(out))
			base, err = s.lsTree(ctx, j.src.Head)
		}
	}
	if err != nil {
		return err
	}

	sub := j.src.Subdir
	full := func(p string) string { return path.Join(sub, p) }
	kept, tracked, gitlinks := splitBase(base, sub)
	var files, candidates []string
	noted := map[string]bool{}
	for _, p := range t.files() {
		if g, ok := inside(full(p), gitlinks); ok {
			if !noted[g] {
				noted[g] = true
				j.notes.add("left out what the sandbox put in submodule %q", g)
			}
			continue
		}
		files = append(files, p)
		if !tracked[full(p)] {
			candidates = append(candidates, full(p))
		}
	}
	ignored, err := j.ignored(ctx, t, kept, candidates)
	if err != nil {
		return err
	}
	if len(ignored) > 0 {
		var examples []string
		for _, c := range candidates {
			if ignored[c] && len(examples) < 3 {
				examples = append(examples, c)
			}
		}
		j.notes.add("left out %d new files that the ignore rules ignore (%q...)", len(ignored), examples)
		files = filterOut(files, func(p string) bool { return ignored[full(p)] })
	}

	entries, err := j.hash(ctx, t, files, sub)
	if err != nil {
		return err
	}
	j.to, err = s.writeTree(ctx, append(kept, entries...), filepath.Join(j.dir, "index"))
	return err
}

// splitBase sorts HEAD's entries: those kept as they are (outside sub, and
// submodules inside it), and the paths and submodules inside sub. An
// entry that is a parent of sub (a file where the directory is now) is
// dropped.
func splitBase(base []entry, sub string) (kept []entry, tracked, gitlinks map[string]bool) {
	tracked, gitlinks = map[string]bool{}, map[string]bool{}
	for _, e := range base {
		switch {
		case !within(e.path, sub):
			if !within(sub, e.path) {
				kept = append(kept, e)
			}
		case e.mode == modeGitlink:
			kept = append(kept, e)
			gitlinks[e.path] = true
		default:
			tracked[e.path] = true
		}
	}
	return kept, tracked, gitlinks
}

// ignored returns which candidates (new files, full paths) the ignore
// rules ignore: the .gitignore files of the new tree, written alone into
// an otherwise empty work tree, the repository's info/exclude and the
// user's core.excludesFile.
func (j *job) ignored(ctx context.Context, t *tree, kept []entry, candidates []string) (map[string]bool, error) {
	if len(candidates) == 0 {
		return nil, nil
	}
	wt := filepath.Join(j.dir, "ignore")
	if err := os.Mkdir(wt, 0o700); err != nil {
		return nil, err
	}
	place := func(p string) (string, error) {
		dst := filepath.Join(wt, filepath.FromSlash(p))
		return dst, os.MkdirAll(filepath.Dir(dst), 0o700)
	}
	for _, e := range kept {
		if path.Base(e.path) == ".gitignore" && (e.mode == modeFile || e.mode == modeExec) {
			dst, err := place(e.path)
			if err == nil {
				err = j.scratch.catBlob(ctx, e.oid, dst)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	for p, n := range t.nodes {
		if path.Base(p) == ".gitignore" && !n.dir && n.mode != modeLink {
			dst, err := place(path.Join(j.src.Subdir, p))
			if err == nil {
				err = os.Link(n.blob, dst)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	exclude, err := os.ReadFile(filepath.Join(j.src.CommonDir, "info", "exclude"))
	if err == nil {
		info := filepath.Join(j.scratch.gitDir, "info")
		if err = os.MkdirAll(info, 0o700); err == nil {
			err = os.WriteFile(filepath.Join(info, "exclude"), exclude, 0o600)
		}
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return j.scratch.ignored(ctx, wt, userExcludesFile(ctx, j.src.Dir), candidates)
}

// buildPlain compares the directory as Pack saw it (its baseline, or the
// directory as it is now) with the sandbox's tree.
func (j *job) buildPlain(ctx context.Context, t *tree, opts TreeOptions) error {
	s, err := newScratch(ctx, j.dir, "sha1", "")
	if err != nil {
		return err
	}
	j.scratch = s
	stage := filepath.Join(j.dir, "old")
	if err := os.Mkdir(stage, 0o700); err != nil {
		return err
	}
	old, err := j.baseline(ctx, stage, opts.Limits)
	if err != nil {
		return fmt.Errorf("the directory before the sandbox: %w", err)
	}
	entries, err := j.hash(ctx, old, old.files(), "")
	if err != nil {
		return err
	}
	if j.from, err = s.writeTree(ctx, entries, filepath.Join(j.dir, "index.old")); err != nil {
		return err
	}
	if entries, err = j.hash(ctx, t, t.files(), ""); err != nil {
		return err
	}
	j.to, err = s.writeTree(ctx, entries, filepath.Join(j.dir, "index"))
	return err
}

// baseline reads the source's baseline file, or packs the directory anew.
func (j *job) baseline(ctx context.Context, stage string, lim Limits) (*tree, error) {
	var discard notes
	if j.src.Baseline != "" {
		f, err := os.Open(j.src.Baseline)
		if err != nil {
			return nil, fmt.Errorf("%w: baseline: %v", errdefs.ErrFailedPrecondition, err)
		}
		defer f.Close()
		return readTree(ctx, f, "", lim, stage, &discard)
	}
	pr, pw := io.Pipe()
	packed := make(chan error, 1)
	go func() {
		err := Pack(ctx, Source{Dir: j.src.Dir}, pw, PackOptions{Limits: lim})
		pw.CloseWithError(err)
		packed <- err
	}()
	t, err := readTree(ctx, pr, "", lim, stage, &discard)
	pr.CloseWithError(errStopped)
	if perr := <-packed; perr != nil && !errors.Is(perr, errStopped) {
		return nil, perr // the cause, rather than the stream it cut short
	}
	return t, err
}

var errStopped = errors.New("stopped reading")

// hash writes the blobs of the given paths of t and returns their entries,
// below prefix.
func (j *job) hash(ctx context.Context, t *tree, paths []string, prefix string) ([]entry, error) {
	blobs := make([]string, len(paths))
	for i, p := range paths {
		blobs[i] = t.nodes[p].blob
	}
	oids, err := j.scratch.hashFiles(ctx, blobs)
	if err != nil {
		return nil, err
	}
	entries := make([]entry, len(paths))
	for i, p := range paths {
		entries[i] = entry{mode: t.nodes[p].mode, oid: oids[i], path: path.Join(prefix, p)}
	}
	return entries, nil
}

// validHead reports whether head is "" or a full commit id in format.
func validHead(format, head string) bool {
	n := map[string]int{"sha1": 40, "sha256": 64}[format]
	if n == 0 {
		return false
	}
	if head == "" {
		return true
	}
	if len(head) != n {
		return false
	}
	return strings.Trim(head, "0123456789abcdef") == ""
}

// within reports whether p is dir or below it ("" is the top, holding all).
func within(p, dir string) bool {
	return dir == "" || p == dir || strings.HasPrefix(p, dir+"/")
}

// inside returns the member of set that p is or is below.
func inside(p string, set map[string]bool) (string, bool) {
	if len(set) == 0 {
		return "", false
	}
	for q := p; q != "." && q != "/" && q != ""; q = path.Dir(q) {
		if set[q] {
			return q, true
		}
	}
	return "", false
}

func filterOut(list []string, drop func(string) bool) []string {
	out := list[:0]
	for _, s := range list {
		if !drop(s) {
			out = append(out, s)
		}
	}
	return out
}
