package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	. "github.com/agentkernel/agentkernel/internal/image/imagetest"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// withMode sets an entry's mode, owner and an xattr.
func withMode(e Entry, mode int64, uid, gid int) Entry {
	e.Hdr.Mode, e.Hdr.Uid, e.Hdr.Gid = mode, uid, gid
	return e
}

// TestPullLowerHardLink pulls images whose top layer hard-links files that
// only lower layers hold: the links read as their targets (content, mode,
// owner; a link to a symlink is that symlink), the shared layer directory
// is left as its own content, and the same layer on another base links
// that base's file.
func TestPullLowerHardLink(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	base := layer(t, false,
		Dir("a/"), withMode(File("a/target", "from the base"), 0o4750, 7, 8),
		Link("a/sym", "target"), File("a/gone", "deleted later"), File("a/shared", "one inode"))
	other := layer(t, false, Dir("a/"), File("a/target", "another base"), Link("a/sym", "elsewhere"), File("a/shared", "x"))
	mid := layer(t, false, Whiteout("a", "gone"))
	top := layer(t, false,
		Dir("b/"), Hard("b/link", "a/target"), Hard("b/symlink", "a/sym"), Hard("b/relink", "b/link"),
		Hard("c/deep/one", "a/shared"), Hard("c/deep/two", "a/shared"),
		Hard("b/replaced", "a/target"), File("b/replaced", "the layer's own"))
	reg.push(t, "links:1", buildImage(t, "amd64", v1.Config{}, base, mid, top))
	reg.push(t, "links:2", buildImage(t, "amd64", v1.Config{}, other, top))

	s := openStore(t)
	got, err := s.Pull(context.Background(), reg.ref("links:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.LayerIDs) != 4 || len(got.LayerBlobs) != 4 || got.LayerBlobs[3].Digest != "" {
		t.Fatalf("layers %v, blobs %v: want a links layer on top", got.LayerIDs, got.LayerBlobs)
	}
	mnt := mountLayers(t, got)
	want := []string{
		". d 0755 +0:+0",
		"a d 0755 +0:+0",
		"a/shared f 0644 +0:+0 \"one inode\"",
		"a/sym l 0777 +0:+0 -> target",
		"a/target f 4750 +7:+8 \"from the base\"",
		"b d 0755 +0:+0",
		"b/link f 4750 +7:+8 \"from the base\" links=2",
		"b/relink f 4750 +7:+8 \"from the base\" links=2",
		"b/replaced f 0644 +0:+0 \"the layer's own\"",
		"b/symlink l 0777 +0:+0 -> target",
		"c d 0755 +0:+0",
		"c/deep d 0755 +0:+0",
		"c/deep/one f 0644 +0:+0 \"one inode\" links=2",
		"c/deep/two f 0644 +0:+0 \"one inode\" links=2",
	}
	if d := Diff(Describe(t, mnt, s.shift.UID, s.shift.GID), want); d != "" {
		t.Errorf("root filesystem differs:\n%s", d)
	}
	// The shared top layer holds only its own content.
	topDir := s.LayerDir(diffIDOf(t, top).Hex)
	if d := Diff(Describe(t, topDir, s.shift.UID, s.shift.GID), []string{
		". d 0755 +0:+0", "b d 0755 +0:+0", "b/replaced f 0644 +0:+0 \"the layer's own\"",
	}); d != "" {
		t.Errorf("top layer differs:\n%s", d)
	}

	// The same top layer on another base links that base's files.
	got2, err := s.Pull(context.Background(), reg.ref("links:2"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got2.LayerIDs[1] != got.LayerIDs[2] || got2.LayerIDs[2] == got.LayerIDs[3] {
		t.Errorf("layers %v and %v: want the top layer shared, the links layers not", got.LayerIDs, got2.LayerIDs)
	}
	mnt2 := mountLayers(t, got2)
	b, err := os.ReadFile(filepath.Join(mnt2, "b/link"))
	if err != nil || string(b) != "another base" {
		t.Errorf("b/link on the other base: %q, %v", b, err)
	}
	l, err := os.Readlink(filepath.Join(mnt2, "b/symlink"))
	if err != nil || l != "elsewhere" {
		t.Errorf("b/symlink on the other base: %q, %v", l, err)
	}

	// Removing the images collects the links layers with the rest.
	for _, m := range []string{mnt, mnt2} {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{got.Name, got2.Name} {
		if err := s.Remove(n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(s.LayerDir(got.LayerIDs[3])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("links layer left after removal: %v", err)
	}
}

// TestPullLowerHardLinkRefused: a link to a file deleted by a whiteout in
// a layer in between, or hidden by an opaque directory, is not found; a
// link whose target escapes the root or goes through a symlink is refused;
// nothing of the image stays.
func TestPullLowerHardLinkRefused(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	base := layer(t, false, Dir("a/"), File("a/target", "x"), Link("s", "a"), Dir("o/"), File("o/f", "x"))
	cases := map[string]struct {
		layers []v1.Layer
		class  error
		msg    string
	}{
		"whiteout between": {[]v1.Layer{base, layer(t, false, Whiteout("a", "target")), layer(t, false, Hard("l", "a/target"))},
			errdefs.ErrNotFound, "deleted by a whiteout"},
		"parent whiteout": {[]v1.Layer{base, layer(t, false, Whiteout("", "a")), layer(t, false, Hard("l", "a/target"))},
			errdefs.ErrNotFound, "deleted by a whiteout"},
		"opaque between": {[]v1.Layer{base, layer(t, false, Dir("o/"), Opaque("o")), layer(t, false, Hard("l", "o/f"))},
			errdefs.ErrNotFound, "opaque"},
		"whiteout before in the layer": {[]v1.Layer{base, layer(t, false, Whiteout("a", "target"), Hard("l", "a/target"))},
			errdefs.ErrNotFound, "whiteout"},
		"absent":         {[]v1.Layer{base, layer(t, false, Hard("l", "a/none"))}, errdefs.ErrNotFound, "none of the lower layers"},
		"escape":         {[]v1.Layer{base, layer(t, false, Hard("l", "../../../../etc/passwd"))}, errdefs.ErrInvalidArgument, ".."},
		"absolute":       {[]v1.Layer{base, layer(t, false, Hard("l", "/etc/passwd"))}, errdefs.ErrInvalidArgument, "absolute"},
		"via symlink":    {[]v1.Layer{base, layer(t, false, Hard("l", "s/target"))}, errdefs.ErrInvalidArgument, "symlink"},
		"to a directory": {[]v1.Layer{base, layer(t, false, Hard("l", "a"))}, errdefs.ErrInvalidArgument, "directory"},
		"under a lower file": {[]v1.Layer{base, layer(t, false, Hard("a/target/l", "o/f"))},
			errdefs.ErrInvalidArgument, "not a directory"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := openStore(t)
			repo := strings.ReplaceAll(name, " ", "-") + ":1"
			reg.push(t, repo, buildImage(t, "amd64", v1.Config{}, c.layers...))
			_, err := s.Pull(context.Background(), reg.ref(repo), PullOptions{})
			if !errors.Is(err, c.class) || err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, c.class, c.msg)
			}
			entries, _ := os.ReadDir(s.dir("layers"))
			if len(entries) != 0 {
				t.Errorf("%d layers left after the failed pull", len(entries))
			}
			if _, err := os.Stat("/etc/passwd"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
