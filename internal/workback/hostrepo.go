package workback

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// hostRepo is the user's repository. Collect runs only these commands in
// it, all with the protections of gitRun: check-ref-format, rev-parse,
// worktree list and update-ref. Everything else happens in a scratch
// repository.
type hostRepo struct {
	src Source
	ref string // refs/heads/agentkernel/NAME
	old string // the branch's commit when it exists and is to be replaced
}

func (h *hostRepo) git(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error) {
	return gitRun{dir: h.src.GitDir, env: append([]string{"GIT_DIR=" + h.src.GitDir}, env...), stdin: stdin, args: args}.run(ctx)
}

// check makes sure the branch can be made: a valid name that does not
// exist yet, or exists, may be replaced and is not checked out.
func (h *hostRepo) check(ctx context.Context, replace bool) error {
	if h.src.GitDir == "" || h.src.CommonDir == "" {
		return fmt.Errorf("%w: the source has no git directory", errdefs.ErrInvalidArgument)
	}
	branch := strings.TrimPrefix(h.ref, "refs/heads/")
	if _, err := h.git(ctx, nil, nil, "check-ref-format", h.ref); err != nil {
		return fmt.Errorf("%w: %q cannot be a branch name", errdefs.ErrInvalidArgument, branch)
	}
	out, err := h.git(ctx, nil, nil, "rev-parse", "--verify", "--quiet", h.ref+"^{commit}")
	switch {
	case exitCode(err) == 1:
		return nil // no such branch
	case err != nil:
		return fmt.Errorf("the repository %s: %w", h.src.TopLevel, err)
	}
	old := strings.TrimSpace(string(out))
	if !replace {
		return fmt.Errorf("%w: branch %s exists (at %s): delete it with `git branch -D %s`, or replace it", errdefs.ErrAlreadyExists, branch, short(old), branch)
	}
	out, err = h.git(ctx, nil, nil, "worktree", "list", "--porcelain")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line == "branch "+h.ref {
			return fmt.Errorf("%w: branch %s is checked out; agentkernel never moves a checked-out branch", errdefs.ErrFailedPrecondition, branch)
		}
	}
	h.old = old
	return nil
}

// publish adds the scratch repository's new objects to the repository and
// makes the branch point at commit. The ref update is atomic and checks
// that the branch is still as check found it.
func (h *hostRepo) publish(ctx context.Context, j *job, commit string, id Identity) error {
	if err := j.scratch.migrate(filepath.Join(h.src.CommonDir, "objects")); err != nil {
		return fmt.Errorf("adding objects to %s: %w", h.src.CommonDir, err)
	}
	cmd := fmt.Sprintf("create %s %s\n", h.ref, commit)
	if h.old != "" {
		cmd = fmt.Sprintf("update %s %s %s\n", h.ref, commit, h.old)
	}
	env := []string{"GIT_COMMITTER_NAME=" + id.Name, "GIT_COMMITTER_EMAIL=" + id.Email}
	msg := "agentkernel: collected sandbox " + strings.TrimPrefix(h.ref, "refs/heads/"+BranchPrefix)
	if _, err := h.git(ctx, strings.NewReader(cmd), env, "update-ref", "-m", msg, "--stdin"); err != nil {
		if strings.Contains(err.Error(), "already exists") {
			return fmt.Errorf("%w: %v", errdefs.ErrAlreadyExists, err)
		}
		return err
	}
	return nil
}
