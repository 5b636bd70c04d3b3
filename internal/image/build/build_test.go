package build

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TestRemoveUnmountsFirst: a build directory with mounts below it (as a
// killed debootstrap could leave) is unmounted before it is deleted, so
// nothing is deleted through a bind mount.
func TestRemoveUnmountsFirst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	work := filepath.Join(t.TempDir(), "build", "debian-1")
	host := t.TempDir()
	marker := filepath.Join(host, "keep")
	if err := os.WriteFile(marker, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	bind := filepath.Join(work, "rootfs", "dev", "host dir")
	proc := filepath.Join(work, "rootfs", "proc")
	for _, d := range []string{bind, proc} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mount(host, bind, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	if err := unix.Mount("tmpfs", proc, "tmpfs", 0, "size=1m"); err != nil {
		unix.Unmount(bind, unix.MNT_DETACH)
		t.Skipf("tmpfs: %v", err)
	}
	t.Cleanup(func() {
		unix.Unmount(proc, unix.MNT_DETACH)
		unix.Unmount(bind, unix.MNT_DETACH)
	})
	mps, err := mountsBelow(work)
	if err != nil || len(mps) != 2 {
		t.Fatalf("mounts below %s: %v %v", work, mps, err)
	}
	b := &Builder{log: slog.New(slog.DiscardHandler)}
	b.remove(work)
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("removing the build directory deleted through the bind mount: %v", err)
	}
	if _, err := os.Stat(work); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the build directory is still there: %v", err)
	}
	if mps, _ := mountsBelow(work); len(mps) != 0 {
		t.Errorf("still mounted: %v", mps)
	}
}

// TestBuildImageRefusals: requests that cannot be built are refused before
// anything runs.
func TestBuildImageRefusals(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the image store shifts owners, which needs root")
	}
	home := t.TempDir()
	store, err := image.Open(filepath.Join(home, "images"), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	if _, err := store.Import(context.Background(), "taken", src); err != nil {
		t.Fatal(err)
	}
	b := New(Options{Home: home, Images: store})
	deb := &api.DebianSource{Suite: "bookworm"}
	for _, c := range []struct {
		req   api.BuildImageRequest
		class error
	}{
		{api.BuildImageRequest{Name: "x"}, errdefs.ErrInvalidArgument},
		{api.BuildImageRequest{Name: "Bad Name", Debian: deb}, errdefs.ErrInvalidArgument},
		{api.BuildImageRequest{Name: "taken", Debian: deb}, errdefs.ErrAlreadyExists},
		{api.BuildImageRequest{Name: "x", Debian: &api.DebianSource{Suite: "--help"}}, errdefs.ErrInvalidArgument},
		{api.BuildImageRequest{Name: "x", Debian: &api.DebianSource{Suite: "bookworm", Packages: []string{"-x"}}}, errdefs.ErrInvalidArgument},
		{api.BuildImageRequest{Name: "x", Debian: &api.DebianSource{Suite: "bookworm", Mirror: "ftp://m/debian"}}, errdefs.ErrInvalidArgument},
	} {
		called := false
		_, err := b.BuildImage(context.Background(), c.req, func(api.BuildProgress) { called = true })
		if !errors.Is(err, c.class) || called {
			t.Errorf("%+v: %v (progress called %v), want %v", c.req, err, called, c.class)
		}
	}
	if _, err := os.Stat(filepath.Join(home, "build")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused build made a build directory: %v", err)
	}
}
