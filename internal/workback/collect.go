package workback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// BranchPrefix starts the name of every branch Collect makes.
const BranchPrefix = "agentkernel/"

// Identity is the author and committer of a collected commit.
type Identity struct {
	Name, Email string
}

// DefaultIdentity is the author and committer unless CollectOptions say.
var DefaultIdentity = Identity{Name: "agentkernel", Email: "agentkernel@localhost"}

// CollectOptions tune Collect.
type CollectOptions struct {
	TreeOptions
	// Name is the sandbox's name (required for a git source): the branch
	// is BranchPrefix+Name, and the commit message names it.
	Name string
	// Identity is the commit's author and committer; zero: DefaultIdentity.
	Identity Identity
	// Message is the commit message; "" means one naming the sandbox.
	Message string
	// Replace moves an existing branch (never one checked out in a
	// worktree) or overwrites an existing patch file; otherwise either is
	// an error wrapping errdefs.ErrAlreadyExists.
	Replace bool
	// PatchPath is where the patch goes for a source outside git
	// (required then). It is written whole or not at all, mode 0600.
	PatchPath string
}

// ChangeKind says how a path changed.
type ChangeKind string

// The kinds of change. A change of mode or of type (a file become a
// symlink) is Modified.
const (
	Added    ChangeKind = "added"
	Modified ChangeKind = "modified"
	Deleted  ChangeKind = "deleted"
)

// Change is one path that the sandbox changed: relative to the top level
// for a git source, to the directory otherwise.
type Change struct {
	Path string     `json:"path"`
	Kind ChangeKind `json:"kind"`
}

// Result is what Collect brought back.
type Result struct {
	Branch  string   `json:"branch,omitempty"` // BranchPrefix+Name; "" if nothing changed or not git
	Commit  string   `json:"commit,omitempty"` // the branch's commit
	Patch   string   `json:"patch,omitempty"`  // the patch file, outside git
	Changes []Change `json:"changes"`          // sorted by path; empty: nothing changed
	Notes   []string `json:"notes,omitempty"`  // what was left out, and why
	Summary string   `json:"summary"`          // one line for a human
}

// Changed reports whether the sandbox changed anything.
func (r Result) Changed() bool { return len(r.Changes) > 0 }

// Collect brings back what the sandbox changed, reading its /workspace as
// the tar stream tree (hostile input: see readTree and the package doc).
//
// For a git source it makes a commit whose parent is src.Head and whose
// tree is HEAD's with src.Subdir replaced by the sandbox's tree, authored
// and committed by opts.Identity, and points the new branch
// BranchPrefix+opts.Name at it. The working tree, the index, HEAD and the
// checked-out branch are never touched; the only writes to the repository
// are new objects and that one ref (with its reflog). Note that the
// commit holds any uncommitted edits that were in the working tree when
// the sandbox was made, since the sandbox started from them.
//
// For a plain directory it writes a unified diff (with binary patches) to
// opts.PatchPath, to be applied in the directory with `git apply`.
//
// If nothing changed, no branch or patch is made and Result.Changed is
// false. An error leaves no branch, no patch and no temporary file.
func Collect(ctx context.Context, src Source, tree io.Reader, opts CollectOptions) (Result, error) {
	res, err := collect(ctx, src, tree, opts)
	if err != nil {
		return Result{}, fmt.Errorf("collect %s: %w", src.Dir, err)
	}
	return res, nil
}

func collect(ctx context.Context, src Source, tree io.Reader, opts CollectOptions) (Result, error) {
	var h *hostRepo
	if src.Git {
		if err := api.ValidateSandboxName(opts.Name); err != nil {
			return Result{}, err
		}
		h = &hostRepo{src: src, ref: "refs/heads/" + BranchPrefix + opts.Name}
		if err := h.check(ctx, opts.Replace); err != nil {
			return Result{}, err
		}
	} else {
		if opts.PatchPath == "" {
			return Result{}, fmt.Errorf("%w: %s is not in a git work tree, and no patch file is given", errdefs.ErrInvalidArgument, src.Dir)
		}
		if _, err := os.Lstat(opts.PatchPath); err == nil && !opts.Replace {
			return Result{}, fmt.Errorf("%w: patch file %s exists", errdefs.ErrAlreadyExists, opts.PatchPath)
		}
	}
	j, err := prepare(ctx, src, tree, opts.TreeOptions)
	if err != nil {
		return Result{}, err
	}
	defer j.close()
	res := Result{Notes: j.notes.all(), Changes: []Change{}}
	if j.from != j.to {
		if res.Changes, err = j.scratch.changes(ctx, j.from, j.to); err != nil {
			return Result{}, err
		}
	}
	switch {
	case !res.Changed():
		res.Summary = "nothing to bring back: the sandbox changed nothing"
	case src.Git:
		id := opts.Identity
		if id.Name == "" && id.Email == "" {
			id = DefaultIdentity
		}
		msg := opts.Message
		if msg == "" {
			msg = defaultMessage(src, opts.Name)
		}
		if res.Commit, err = j.scratch.commitTree(ctx, j.to, src.Head, msg, id); err != nil {
			return Result{}, err
		}
		if err := h.publish(ctx, j, res.Commit, id); err != nil {
			return Result{}, err
		}
		res.Branch = strings.TrimPrefix(h.ref, "refs/heads/")
		res.Summary = fmt.Sprintf("branch %s at %s: %s", res.Branch, short(res.Commit), countChanges(res.Changes))
	default:
		if err := writePatch(ctx, j, opts.PatchPath, opts.Replace); err != nil {
			return Result{}, err
		}
		res.Patch = opts.PatchPath
		res.Summary = fmt.Sprintf("patch %s: %s", res.Patch, countChanges(res.Changes))
	}
	if len(res.Notes) > 0 {
		res.Summary += fmt.Sprintf(" (%d notes)", len(res.Notes))
	}
	return res, nil
}

func defaultMessage(src Source, name string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agentkernel: work from sandbox %s\n\n", name)
	fmt.Fprintf(&b, "The sandbox's /workspace as the agent left it, collected by agentkernel\n")
	if src.Subdir != "" {
		fmt.Fprintf(&b, "into %s/ ", src.Subdir)
	}
	if src.Head != "" {
		fmt.Fprintf(&b, "on top of %s, the HEAD the sandbox was made from", short(src.Head))
		if src.Branch != "" {
			fmt.Fprintf(&b, " (on %s)", src.Branch)
		}
	}
	b.WriteString(".\n")
	return b.String()
}

// writePatch writes the patch to a temporary file beside path, then puts
// it in place.
func writePatch(ctx context.Context, j *job, path string, replace bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".agentkernel-patch-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = j.scratch.patch(ctx, j.from, j.to, true, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if replace {
		return os.Rename(f.Name(), path)
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: patch file %s exists", errdefs.ErrAlreadyExists, path)
		}
		return err
	}
	return nil
}

func countChanges(cs []Change) string {
	n := map[ChangeKind]int{}
	for _, c := range cs {
		n[c.Kind]++
	}
	return fmt.Sprintf("%d added, %d modified, %d deleted", n[Added], n[Modified], n[Deleted])
}

func short(oid string) string {
	if len(oid) > 12 {
		return oid[:12]
	}
	return oid
}
