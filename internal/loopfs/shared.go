package loopfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrReadOnlyInUse is MountShared's answer to a read-write mount of an
// image that is already mounted read-only on the host.
var ErrReadOnlyInUse = errors.New("the image is mounted read-only on the host by another user; stop it first")

// MountShared mounts the filesystem in image at target as Mount does, but
// first looks for a loop device that already serves the same file (same
// device and inode, whatever its path now) and, if one does, mounts that
// device again. The kernel then hands back the filesystem instance already
// mounted, so every host mount of one image is one ext4, never two
// writers of the same blocks through two devices. An exclusive flock on
// the image makes the look-up and the attach of concurrent callers one
// step each.
//
// A device found read-write is mounted read-write even when readOnly is
// asked (a filesystem instance has one mode): the caller makes its own
// view read-only (IDMappedMount with readOnly, a read-only bind). A device
// found read-only refuses a read-write mount with ErrReadOnlyInUse.
// data applies only when a new device is attached.
func MountShared(image, target, fstype string, readOnly bool, flags uintptr, data string) error {
	lock, err := os.OpenFile(image, os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("loopfs: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("loopfs: locking %s: %w", image, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(lock.Fd()), &st); err != nil {
		return fmt.Errorf("loopfs: %w", err)
	}
	dev, devRO, err := findDevice(uint64(st.Dev), st.Ino)
	if err != nil {
		return err
	}
	if dev == nil {
		return Mount(image, target, fstype, readOnly, flags, data)
	}
	defer dev.Close()
	if devRO {
		if !readOnly {
			return fmt.Errorf("loopfs: %s: %w", image, ErrReadOnlyInUse)
		}
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(dev.Name(), target, fstype, flags, ""); err != nil {
		return fmt.Errorf("loopfs: mounting %s (%s, shared) on %s: %w", image, dev.Name(), target, err)
	}
	return nil
}

// findDevice returns the loop device bound to the file (dev, ino), open
// (an open descriptor keeps an autoclear device from going), and whether
// it is read-only; nil when there is none.
func findDevice(dev, ino uint64) (*os.File, bool, error) {
	paths, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, p := range paths {
		name := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(p)))
		f, err := os.OpenFile(name, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		// Checked with the device open: a device being cleared answers
		// ENXIO, and one held open is not cleared under us.
		info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
		if err != nil || info.Device != dev || info.Inode != ino {
			f.Close()
			continue
		}
		return f, info.Flags&unix.LO_FLAGS_READ_ONLY != 0, nil
	}
	return nil, false, nil
}
