package workback

import (
	"context"
	"fmt"
	"io"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// MaxDiffBytes bounds what Diff returns.
const MaxDiffBytes = 64 << 20

// Diff returns the unified diff of what Collect would bring back from the
// sandbox whose /workspace is the tar stream tree, read by the same rules
// (the same hostile-input checks, ignore rules and .git exclusion); "" if
// nothing changed. Binary files show as "Binary files ... differ". It
// writes nothing to the repository or the directory: every object is made
// in a scratch repository that is then removed. Paths are relative to the
// top level for a git source (against src.Head), to the directory
// otherwise. A diff larger than MaxDiffBytes is an error wrapping
// errdefs.ErrTooLarge.
func Diff(ctx context.Context, src Source, tree io.Reader, opts TreeOptions) (string, error) {
	j, err := prepare(ctx, src, tree, opts)
	if err != nil {
		return "", fmt.Errorf("diff %s: %w", src.Dir, err)
	}
	defer j.close()
	if j.from == j.to {
		return "", nil
	}
	var b boundedBuffer
	if err := j.scratch.patch(ctx, j.from, j.to, false, &b); err != nil {
		if b.full {
			return "", fmt.Errorf("diff %s: %w: the diff is larger than %d bytes", src.Dir, errdefs.ErrTooLarge, MaxDiffBytes)
		}
		return "", fmt.Errorf("diff %s: %w", src.Dir, err)
	}
	return string(b.b), nil
}

// boundedBuffer holds up to MaxDiffBytes and then fails writes.
type boundedBuffer struct {
	b    []byte
	full bool
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if len(w.b)+len(p) > MaxDiffBytes {
		w.full = true
		return 0, errdefs.ErrTooLarge
	}
	w.b = append(w.b, p...)
	return len(p), nil
}
