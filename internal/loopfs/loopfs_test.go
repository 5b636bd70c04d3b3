package loopfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// ext4Image makes a 16 MB ext4 image in a fresh directory and returns both.
// Loop mounts need root, as .ci/run is; mkfs.ext4 is installed by
// scripts/setup.sh.
func ext4Image(t *testing.T) (dir, img string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loop devices and mounts need root (sudo go test)")
	}
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 is not installed (e2fsprogs; scripts/setup.sh installs it)")
	}
	dir = t.TempDir()
	img = filepath.Join(dir, "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 16<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v: %s", err, out)
	}
	return dir, img
}

// TestMountSizeLimitAndNoLeak mounts a 16 MB ext4 image, fills it until
// the kernel answers ENOSPC, unmounts it, and checks that no loop device
// backed by the image is left (autoclear).
func TestMountSizeLimitAndNoLeak(t *testing.T) {
	dir, img := ext4Image(t)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o700)
	if err := Mount(img, mnt, "ext4", false, unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		t.Fatal(err)
	}
	if len(Devices(dir)) != 1 {
		t.Errorf("loop devices under %s while mounted: %v, want one", dir, Devices(dir))
	}
	f, err := os.Create(filepath.Join(mnt, "fill"))
	if err != nil {
		Unmount(mnt)
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var werr error
	for i := 0; i < 64 && werr == nil; i++ {
		_, werr = f.Write(buf)
		if werr == nil {
			werr = f.Sync()
		}
	}
	f.Close()
	if !errors.Is(werr, unix.ENOSPC) {
		t.Errorf("writing 64 MB into a 16 MB volume: %v, want ENOSPC", werr)
	}
	if err := Unmount(mnt); err != nil {
		t.Fatal(err)
	}
	if ds := Devices(dir); len(ds) != 0 {
		t.Errorf("loop devices left after unmount: %v", ds)
	}
	// Read-only: writing is refused.
	if err := Mount(img, mnt, "ext4", true, 0, "noload"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "x"), nil, 0o600); !errors.Is(err, unix.EROFS) {
		t.Errorf("write on a read-only mount: %v, want EROFS", err)
	}
	Unmount(mnt)
	if ds := Devices(dir); len(ds) != 0 {
		t.Errorf("loop devices left after the read-only unmount: %v", ds)
	}
}

// TestMountSharedOneFilesystem mounts one image twice with MountShared:
// both mounts use one loop device (one ext4 instance), a file written
// through one is read through the other, a read-write mount beside a
// read-only device is refused, and unmounting both leaves no device.
func TestMountSharedOneFilesystem(t *testing.T) {
	dir, img := ext4Image(t)
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.Mkdir(a, 0o700)
	os.Mkdir(b, 0o700)
	if err := MountShared(img, a, "ext4", false, unix.MS_NODEV, ""); err != nil {
		t.Fatal(err)
	}
	defer Unmount(a)
	if err := MountShared(img, b, "ext4", true, unix.MS_NODEV, "noload"); err != nil {
		t.Fatal(err)
	}
	defer Unmount(b)
	if ds := Devices(dir); len(ds) != 1 {
		t.Errorf("loop devices with two shared mounts: %v, want one", ds)
	}
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("seen"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(b, "f")); err != nil || string(got) != "seen" {
		t.Errorf("read through the second mount: %q, %v", got, err)
	}
	Unmount(b)
	Unmount(a)
	if ds := Devices(dir); len(ds) != 0 {
		t.Errorf("loop devices left: %v", ds)
	}
	// A read-only device first: a read-write mount beside it is refused.
	if err := MountShared(img, a, "ext4", true, 0, "noload"); err != nil {
		t.Fatal(err)
	}
	if err := MountShared(img, b, "ext4", false, 0, ""); !errors.Is(err, ErrReadOnlyInUse) {
		t.Errorf("read-write beside a read-only device: %v, want ErrReadOnlyInUse", err)
		Unmount(b)
	}
	Unmount(a)
	if ds := Devices(dir); len(ds) != 0 {
		t.Errorf("loop devices left: %v", ds)
	}
}
