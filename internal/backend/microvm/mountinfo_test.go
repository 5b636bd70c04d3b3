package microvm

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
	if !mountedUnder(filepath.Dir(dir)) {
		t.Fatalf("mountedUnder does not see the mount at %q", dir)
	}
}
