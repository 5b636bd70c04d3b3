package container

import (
	"path/filepath"
	"testing"

	"github.com/agentkernel/agentkernel/internal/testutil"
)

// TestMountWithSpaceSeen: this backend's teardown finds a mount whose path
// holds a space (the layers issue: two parsers skipped mountinfo's
// escapes, so such a mount went unseen and was deleted through).
func TestMountWithSpaceSeen(t *testing.T) {
	dir := testutil.MountWithSpace(t)
	mps, err := mountsUnder(filepath.Dir(dir))
	if err != nil || len(mps) != 1 || mps[0] != dir {
		t.Fatalf("mountsUnder(%q) = %q, %v", filepath.Dir(dir), mps, err)
	}
}
