package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TestDiffLayerAndCompose makes an upper directory as a sandbox would
// leave it, turns it into a layer on top of an imported image, and checks
// the stored blob, the unpacked layer (overlay whiteout and opaque marker
// made again) and the published image.
func TestDiffLayerAndCompose(t *testing.T) {
	requireRoot(t)
	s := openStore(t)
	ctx := context.Background()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "old"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	base, err := s.Import(ctx, "base", src)
	if err != nil {
		t.Fatal(err)
	}

	up := t.TempDir()
	os.Chown(up, DefaultShift, DefaultShift)
	mk := func(p string, mode uint32, dev int) {
		t.Helper()
		if err := unix.Mknod(filepath.Join(up, p), mode, dev); err != nil {
			t.Fatal(err)
		}
		os.Lchown(filepath.Join(up, p), DefaultShift, DefaultShift)
	}
	mk("old", unix.S_IFCHR, 0)
	if err := os.WriteFile(filepath.Join(up, "new"), []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(up, "new"), DefaultShift+1000, DefaultShift+1000)
	os.Mkdir(filepath.Join(up, "d"), 0o755)
	os.Chown(filepath.Join(up, "d"), DefaultShift, DefaultShift)
	if err := unix.Setxattr(filepath.Join(up, "d"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Skipf("needs root on a filesystem with trusted.* xattrs (CI runs as root on ext4): %v", err)
	}
	os.MkdirAll(filepath.Join(up, ".agentkernel/run"), 0o755)

	l, release, err := s.DiffLayer(ctx, up, []string{".agentkernel"})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, ok := s.blobs.Has(v1.Hash{Algorithm: "sha256", Hex: l.ID}); !ok || l.Blob.MediaType != MediaTypeLayer {
		t.Fatalf("blob of layer %+v not stored", l)
	}
	dir := s.dir("layers", l.ID)
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "old"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout not re-made: %v %+v", err, st)
	}
	if err := unix.Lstat(filepath.Join(dir, "new"), &st); err != nil || st.Uid != DefaultShift+1000 {
		t.Errorf("new: %v uid %d", err, st.Uid)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "d"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque marker: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, ".agentkernel")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".agentkernel was not excluded: %v", err)
	}

	img, err := s.Compose("derived:1", base, []NewLayer{l}, &Config{Cmd: []string{"/new"}}, "commit", false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("derived:1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.LayerIDs) != 2 || got.LayerIDs[0] != base.LayerIDs[0] || got.LayerIDs[1] != l.ID ||
		len(got.LayerBlobs) != 2 || got.LayerBlobs[0].Digest != "" || got.LayerBlobs[1].Digest != l.Blob.Digest ||
		got.Config.Cmd[0] != "/new" || got.ID != img.ID {
		t.Fatalf("image %+v", got)
	}
	if _, err := s.Compose("derived:1", base, []NewLayer{l}, nil, "", false); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second compose: %v", err)
	}
	// The same diff again is the same layer, stored once.
	l2, release2, err := s.DiffLayer(ctx, up, []string{".agentkernel"})
	if err != nil {
		t.Fatal(err)
	}
	release2()
	if l2.ID != l.ID {
		t.Errorf("same upper, layer %s then %s", l.ID, l2.ID)
	}
	// Prune keeps what the image uses; removing it frees the new layer
	// and its blob.
	release()
	if _, err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if !s.HasLayer(l.ID) {
		t.Fatal("prune removed a layer in use")
	}
	if err := s.Remove("derived:1"); err != nil {
		t.Fatal(err)
	}
	if s.HasLayer(l.ID) {
		t.Error("layer left after its image was removed")
	}
	if _, ok := s.blobs.Has(v1.Hash{Algorithm: "sha256", Hex: l.ID}); ok {
		t.Error("blob left after its image was removed")
	}
}
