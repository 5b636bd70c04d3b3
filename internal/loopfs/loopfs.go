// Package loopfs mounts a filesystem image file (ext4) on the host through
// a loop device, and makes an idmapped view of a mount. It is small and
// shared: named volumes (internal/volume) mount their disk images with it,
// and anything else that needs a size-limited directory backed by an image
// file can too.
//
// A loop device set up here has the autoclear flag: the kernel detaches it
// when the last mount of its filesystem goes, so Unmount (or a lazy unmount
// by anyone) leaves no loop device behind, and no loop device is left if
// Mount fails half-way.
package loopfs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mount mounts the filesystem (fstype, e.g. "ext4") in the image file
// image at target, an existing directory, through a fresh autoclear loop
// device. readOnly makes both the loop device and the mount read-only.
// flags are extra mount flags (unix.MS_NODEV, …) and data the filesystem's
// options.
func Mount(image, target, fstype string, readOnly bool, flags uintptr, data string) error {
	mode := os.O_RDWR
	if readOnly {
		mode = os.O_RDONLY
		flags |= unix.MS_RDONLY
	}
	img, err := os.OpenFile(image, mode|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("loopfs: %w", err)
	}
	defer img.Close()
	dev, err := attach(img, readOnly)
	if err != nil {
		return err
	}
	defer dev.Close() // with autoclear, the device goes with the last of the mount and this fd
	if err := unix.Mount(dev.Name(), target, fstype, flags, data); err != nil {
		return fmt.Errorf("loopfs: mounting %s (%s) on %s: %w", image, dev.Name(), target, err)
	}
	return nil
}

// attach binds img to a free loop device and returns the device, open.
// Another process may take the free device between the query and the
// configure; that is retried.
func attach(img *os.File, readOnly bool) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loopfs: %w", err)
	}
	defer ctl.Close()
	for try := 0; ; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("loopfs: no free loop device: %w", err)
		}
		name := fmt.Sprintf("/dev/loop%d", n)
		dev, err := os.OpenFile(name, os.O_RDWR|unix.O_CLOEXEC, 0)
		if errors.Is(err, os.ErrNotExist) {
			// udev has not made the node yet: make it.
			if err = unix.Mknod(name, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n)))); err == nil || errors.Is(err, os.ErrExist) {
				dev, err = os.OpenFile(name, os.O_RDWR|unix.O_CLOEXEC, 0)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("loopfs: %w", err)
		}
		cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		if readOnly {
			cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
		}
		copy(cfg.Info.File_name[:], filepath.Base(img.Name()))
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if errors.Is(err, unix.EBUSY) && try < 20 {
			time.Sleep(time.Duration(try+1) * 5 * time.Millisecond)
			continue
		}
		return nil, fmt.Errorf("loopfs: configuring %s: %w", name, err)
	}
}

// Unmount unmounts target; the loop device under it detaches itself once
// no other mount of its filesystem remains. A target that is not mounted
// is not an error.
func Unmount(target string) error {
	if err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("loopfs: unmounting %s: %w", target, err)
	}
	return nil
}

// Devices lists the loop devices whose backing file is under dir (as the
// kernel names it, in /sys/block/loop*/loop/backing_file): a leak check.
func Devices(dir string) []string {
	var out []string
	paths, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), " (deleted)")
		if f == dir || strings.HasPrefix(f, dir+"/") {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(p)))+" ("+f+")")
		}
	}
	return out
}

// IDMapUserns returns an open user namespace for IDMappedMount, held by a
// sleeping child until the returned stop is called: through it, on-disk
// uid uidFrom+n shows as uidTo+n and gid gidFrom+n as gidTo+n, for n below
// size. (A volume written with a sandbox's own ids, root 0, is shown to a
// container whose root is host uid 100000 with From 0, To 100000; an
// image layer shifted to 100000 is shown unshifted with the reverse.)
func IDMapUserns(uidFrom, uidTo, gidFrom, gidTo, size uint32) (*os.File, func(), error) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(sleep, "3600")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER,
		// An idmapped mount reads an on-disk id as an id inside this
		// namespace and shows the host id it maps to.
		UidMappings: []syscall.SysProcIDMap{{ContainerID: int(uidFrom), HostID: int(uidTo), Size: int(size)}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: int(gidFrom), HostID: int(gidTo), Size: int(size)}},
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("user namespace for the id map: %w", err)
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		stop()
		return nil, nil, err
	}
	return f, func() { f.Close(); stop() }, nil
}

// IDMappedMount mounts a clone of the mount at src on dst with owners seen
// through userns's id maps (see IDMapUserns), read-only if readOnly.
func IDMappedMount(src, dst string, userns *os.File, readOnly bool) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(fd)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd())}
	if readOnly {
		attr.Attr_set |= unix.MOUNT_ATTR_RDONLY
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("idmapping the mount (needs Linux 5.12+ and a filesystem that supports it): %w", err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}
