package workback

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Source describes a host project directory as it was when a sandbox was
// made from it. It is plain data (JSON-friendly) so that a caller can keep
// it with the sandbox and collect or diff later, in another process.
type Source struct {
	// Dir is the directory, absolute, with symlinks resolved.
	Dir string `json:"dir"`
	// Git is set when Dir is inside a git work tree; the fields below
	// up to Subdir are set only then.
	Git bool `json:"git"`
	// TopLevel is the work tree's top level.
	TopLevel string `json:"top_level,omitempty"`
	// GitDir is the work tree's git directory (a linked worktree's own).
	GitDir string `json:"git_dir,omitempty"`
	// CommonDir holds the repository's objects and refs (GitDir itself
	// except in a linked worktree).
	CommonDir string `json:"common_dir,omitempty"`
	// ObjectFormat is the repository's hash, "sha1" or "sha256".
	ObjectFormat string `json:"object_format,omitempty"`
	// Head is the commit HEAD named; "" in a repository with no commit yet.
	Head string `json:"head,omitempty"`
	// Branch is the checked-out branch's short name; "" when HEAD is
	// detached.
	Branch string `json:"branch,omitempty"`
	// Subdir is Dir relative to TopLevel, slash-separated; "" at the top.
	Subdir string `json:"subdir,omitempty"`

	// Baseline, for a directory outside git, is a file in which Pack keeps
	// a copy of what it packed, so that Collect and Diff compare the
	// sandbox against the directory as it was rather than as it is by
	// then. The caller picks the path (in the sandbox's state directory,
	// say) before Pack and removes the file when the sandbox is gone.
	// Empty: Collect and Diff compare against the directory as it is when
	// they run. Unused for git sources, whose baseline is Head.
	Baseline string `json:"baseline,omitempty"`
}

// Snapshot describes dir, which must be a directory. A directory inside a
// git work tree is a git source; one inside a .git directory or a bare
// repository is refused; anything else is a plain directory. It needs the
// git command in either case, and runs only read-only git commands with
// the protections of every command in this package.
func Snapshot(ctx context.Context, dir string) (Source, error) {
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return Source{}, fmt.Errorf("snapshot %s: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return Source{}, fmt.Errorf("snapshot %s: %w", dir, err)
	} else if !fi.IsDir() {
		return Source{}, fmt.Errorf("snapshot %s: %w: not a directory", dir, errdefs.ErrInvalidArgument)
	}
	if strings.ContainsAny(abs, "\n\x00") {
		return Source{}, fmt.Errorf("snapshot %q: %w: a newline in the path is not supported", abs, errdefs.ErrInvalidArgument)
	}
	src := Source{Dir: abs}
	out, err := gitRun{dir: abs, args: []string{"rev-parse", "--is-inside-work-tree"}}.run(ctx)
	if err != nil {
		var ge *GitError
		if errors.As(err, &ge) && strings.Contains(ge.Stderr, "not a git repository") {
			return src, nil // a plain directory
		}
		return Source{}, fmt.Errorf("snapshot %s: %w", abs, err)
	}
	if strings.TrimSpace(string(out)) != "true" {
		return Source{}, fmt.Errorf("snapshot %s: %w: inside a .git directory or a bare repository, not a work tree", abs, errdefs.ErrInvalidArgument)
	}
	if err := describeGit(ctx, &src); err != nil {
		return Source{}, fmt.Errorf("snapshot %s: %w", abs, err)
	}
	return src, nil
}

// describeGit fills in the git fields of src.
func describeGit(ctx context.Context, src *Source) error {
	out, err := gitRun{dir: src.Dir, args: []string{"rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir", "--show-object-format", "--show-prefix"}}.run(ctx)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) < 4 {
		return fmt.Errorf("git rev-parse: unexpected output %q", out)
	}
	src.Git = true
	src.TopLevel, src.GitDir, src.CommonDir, src.ObjectFormat = lines[0], lines[1], lines[2], lines[3]
	if len(lines) > 4 {
		src.Subdir = strings.TrimSuffix(lines[4], "/")
	}
	if !filepath.IsAbs(src.CommonDir) {
		src.CommonDir = filepath.Join(src.Dir, src.CommonDir)
	}
	if src.ObjectFormat != "sha1" && src.ObjectFormat != "sha256" {
		return fmt.Errorf("%w: unknown object format %q", errdefs.ErrNotImplemented, src.ObjectFormat)
	}
	out, err = gitRun{dir: src.Dir, args: []string{"rev-parse", "--verify", "--quiet", "HEAD^{commit}"}}.run(ctx)
	switch {
	case err == nil:
		src.Head = strings.TrimSpace(string(out))
	case exitCode(err) != 1: // 1: no commit yet
		return err
	}
	out, err = gitRun{dir: src.Dir, args: []string{"symbolic-ref", "--quiet", "--short", "HEAD"}}.run(ctx)
	switch {
	case err == nil:
		src.Branch = strings.TrimSpace(string(out))
	case exitCode(err) != 1: // 1: detached
		return err
	}
	return nil
}
