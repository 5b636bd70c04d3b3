package microvm

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMountWithSpaceSeen: this backend's teardown finds a mount whose path
// holds a space (the layers issue: two parsers skipped mountinfo's
// escapes, so such a mount went unseen and was deleted through).
func TestMountWithSpaceSeen(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := filepath.Join(t.TempDir(), "a dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount here: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	if !mountSeen(dir) {
		t.Fatalf("%s does not see the mount at %q", "mountedUnder", dir)
	}
}

func mountSeen(dir string) bool { return mountedUnder(filepath.Dir(dir)) }
