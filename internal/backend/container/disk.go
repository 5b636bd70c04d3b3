package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/mountinfo"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// The writable disk. Everything a sandbox can write to (the overlay's upper
// layer of an imported image, or the host image's /root, /home and
// /var/tmp, and /tmp in both) lives on one ext4 filesystem of its own: a
// sparse image file, disk.ext4 in StateDir, loop-mounted at StateDir/disk
// while the sandbox runs (and while commit or export read its changes).
// Its size is Spec.Resources.DiskMB, so a sandbox that fills it gets ENOSPC
// and the host's disk is untouched beyond that size. (The host's own
// filesystem has no project quotas to offer: it is mounted without
// prjquota, and this process may lack CAP_SYS_RESOURCE, so a filesystem of
// the sandbox's own is what works everywhere.)
//
// The loop device is bound with LO_FLAGS_AUTOCLEAR: the kernel detaches it
// when the filesystem is unmounted, so unmounting is all teardown does and
// a crash leaves at most a mount, which the next Cleanup removes.
//
// A sandbox whose spec has no DiskMB (made before disks had a size) keeps
// its files directly in StateDir, without a limit, as before.

const (
	diskImage = "disk.ext4" // in StateDir
	diskMount = "disk"      // in StateDir
	// diskMkfsTimeout bounds making one disk (a sparse file: ~20 ms).
	diskMkfsTimeout = 30 * time.Second
)

// diskOptions are the mount options of the writable disk: discard gives
// the host back the space of deleted files (the loop device punches holes
// in the image), noinit_itable keeps ext4 from zeroing the fresh image's
// inode tables in the background (it is sparse: they read as zeros).
const diskOptions = "discard,noinit_itable"

// hasDisk reports whether the sandbox's writable state lives on a disk of
// its own.
func hasDisk(s *backend.Spec) bool { return s.Resources.DiskMB > 0 }

// makeDisk creates the sparse, empty ext4 image p of sizeMB if it does not
// exist yet (it holds the sandbox's files across stop and start). With a
// template directory it copies the data blocks (a few MiB) of a fresh
// image of that size, made once: mkfs.ext4 costs a fork and an fsync
// (20 to 150 ms on a busy host), a copy a few milliseconds. The copies
// share the template's filesystem UUID, which ext4 does not mind.
func makeDisk(ctx context.Context, p string, sizeMB int, templates string) error {
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	tmp := p + ".tmp"
	os.Remove(tmp)
	var err error
	if templates == "" {
		err = mkfsDisk(ctx, tmp, sizeMB)
	} else {
		var tpl string
		if tpl, err = diskTemplate(ctx, templates, sizeMB); err == nil {
			err = copySparse(tpl, tmp)
		}
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, p)
}

// diskTemplate returns dir/ext4-<sizeMB>.img, making it under an flock if
// it does not exist yet.
func diskTemplate(ctx context.Context, dir string, sizeMB int) (string, error) {
	final := filepath.Join(dir, fmt.Sprintf("ext4-%d.img", sizeMB))
	if _, err := os.Stat(final); err == nil {
		now := time.Now()
		os.Chtimes(final, now, now) // recently used: kept by pruneTemplates
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(final); err == nil {
		return final, nil // made while we waited
	}
	tmp := final + ".tmp"
	os.Remove(tmp)
	if err := mkfsDisk(ctx, tmp, sizeMB); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	pruneTemplates(dir, maxDiskTemplates)
	return final, nil
}

// maxDiskTemplates bounds the template cache: callers choosing many disk
// sizes must not fill the home with templates (a large disk's metadata
// takes tens of MiB).
const maxDiskTemplates = 8

// pruneTemplates removes all but the keep most recently used templates in
// dir (a copy in progress keeps its open file).
func pruneTemplates(dir string, keep int) {
	paths, _ := filepath.Glob(filepath.Join(dir, "ext4-*.img"))
	type tpl struct {
		path string
		used time.Time
	}
	var ts []tpl
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			ts = append(ts, tpl{p, fi.ModTime()})
		}
	}
	slices.SortFunc(ts, func(a, b tpl) int { return b.used.Compare(a.used) })
	for i := keep; i < len(ts); i++ {
		os.Remove(ts[i].path)
	}
}

// mkfsDisk makes p a sparse, empty ext4 image of sizeMB.
func mkfsDisk(ctx context.Context, p string, sizeMB int) error {
	ctx, cancel := context.WithTimeout(ctx, diskMkfsTimeout)
	defer cancel()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(int64(sizeMB) << 20)
	f.Close()
	if err != nil {
		return err
	}
	// -m 0: no blocks reserved for root, who is the sandbox's user.
	cmd := exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-t", "ext4", "-b", "4096", "-m", "0", "-L", "ak-disk",
		"-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0", p)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("%w: mkfs.ext4 is needed for the sandbox's disk (install e2fsprogs): %v", errdefs.ErrFailedPrecondition, err)
		}
		return fmt.Errorf("mkfs.ext4: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// copySparse copies src to the new file dst, data extents only: the holes
// stay holes.
func copySparse(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	if err := out.Truncate(fi.Size()); err != nil {
		out.Close()
		return err
	}
	for off := int64(0); off < fi.Size(); {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			out.Close()
			return fmt.Errorf("copying %s: %w", src, err)
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			out.Close()
			return fmt.Errorf("copying %s: %w", src, err)
		}
		for r, w := data, data; r < hole; {
			n, err := unix.CopyFileRange(int(in.Fd()), &r, int(out.Fd()), &w, int(hole-r), 0)
			if err != nil || n == 0 {
				out.Close()
				return fmt.Errorf("copying %s: %d bytes at %d: %v", src, hole-r, r, err)
			}
		}
		off = hole
	}
	return out.Close()
}

// mountDisk loop-mounts the image at dir unless something is mounted there
// already (a stopped sandbox whose changes were read).
func mountDisk(img, dir string) error {
	if mounted, err := isMountPoint(dir); err != nil {
		return err
	} else if mounted {
		return nil
	}
	if err := os.Mkdir(dir, 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	dev, err := attachLoop(img)
	if err != nil {
		return fmt.Errorf("%w: attaching the sandbox's disk %s to a loop device: %v", errdefs.ErrFailedPrecondition, img, err)
	}
	// The mount holds the device open; closing ours lets AUTOCLEAR detach
	// it when the filesystem is unmounted (or now, if the mount fails).
	defer dev.Close()
	if err := unix.Mount(dev.Name(), dir, "ext4", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOATIME, diskOptions); err != nil {
		return fmt.Errorf("%w: mounting the sandbox's disk %s (%s) at %s: %v", errdefs.ErrFailedPrecondition, img, dev.Name(), dir, err)
	}
	// The mount point's own mode is hidden by the disk's root: let the
	// mapped root traverse it to the binds below (runc's init walks them).
	return os.Chmod(dir, 0o711)
}

// attachLoop binds a free loop device to img (AUTOCLEAR) and returns it
// open. Another process may take the free device first: then it tries the
// next.
func attachLoop(img string) (*os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	back, err := os.OpenFile(img, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer back.Close()
	var lastErr error
	for range 16 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
		}
		name := fmt.Sprintf("/dev/loop%d", n)
		var dev *os.File
		for i := 0; i < 50; i++ { // a new device's node may appear late
			dev, err = os.OpenFile(name, os.O_RDWR|unix.O_CLOEXEC, 0)
			if !errors.Is(err, fs.ErrNotExist) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		if err != nil {
			return nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(back.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:], img)
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("LOOP_CONFIGURE %s: %w", name, err)
		}
		lastErr = err
	}
	return nil, fmt.Errorf("no free loop device: %w", lastErr)
}

// isMountPoint reports whether dir is a mount point in this namespace.
func isMountPoint(dir string) (bool, error) {
	ms, err := mountinfo.Self()
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.Target == dir {
			return true, nil
		}
	}
	return false, nil
}

// onDisk moves a layout's writable places onto the disk mounted at
// l.disk.
func (l layout) onDisk() layout {
	l.persist = filepath.Join(l.disk, "persist")
	l.tmp = filepath.Join(l.disk, "tmp")
	l.upper = filepath.Join(l.disk, "overlay", "upper")
	l.work = filepath.Join(l.disk, "overlay", "work")
	return l
}
