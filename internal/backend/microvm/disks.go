package microvm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/mountinfo"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Disks. Every sandbox boots from read-only lower disks shared by all
// sandboxes of its image plus one writable disk of its own; the guest
// stacks an overlay of them (internal/guestinit). The lower disks are ext4
// images made with `mkfs.ext4 -d DIR` (no loop mount):
//
//   - the host image: a "usr" disk of the host's /usr, /lib* and /bin
//     links, cached machine-wide in CacheDir/disks (it is large: building
//     it copies /usr; `agentkernel setup` builds it ahead), and an "etc"
//     disk of the image store's scrubbed /etc copy, cached per store;
//   - an imported image: one disk of its layers, cached per store.
//
// A cached disk is named by a hash of what it was built from, published by
// rename under an flock, so concurrent starts build it once and a change
// of the source (a package installed, /etc rebuilt) builds a new one.

const (
	// mkfsTimeout bounds building one disk.
	mkfsTimeout = 20 * time.Minute
	// DefaultWritableMB is the size of a sandbox's writable disk (sparse).
	DefaultWritableMB = 4096
)

// hostKey identifies the state of the host directories behind the host
// image's usr disk: the directories and symlinks, their mtimes, and dpkg's
// status file (which changes whenever a package is installed).
func hostKey(hv *image.HostView) string {
	h := sha256.New()
	binds := append([]string(nil), hv.Binds...)
	sort.Strings(binds)
	stamp := func(p string) {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			fmt.Fprintf(h, "%s %d %d %d\n", p, st.Mtim.Sec, st.Mtim.Nsec, st.Size)
		}
	}
	for _, b := range binds {
		stamp(b)
		for _, sub := range []string{"bin", "sbin", "lib", "lib64", "local", "local/bin", "local/lib", "share"} {
			stamp(filepath.Join(b, sub))
		}
	}
	var links []string
	for k, v := range hv.Symlinks {
		links = append(links, k+"->"+v)
	}
	sort.Strings(links)
	fmt.Fprintln(h, strings.Join(links, " "))
	stamp("/var/lib/dpkg/status")
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// ensureDisk returns dir/name, building it with build (into a temporary
// path) under an flock if it does not exist yet. Older disks with the same
// prefix are removed once the new one is published.
func ensureDisk(ctx context.Context, dir, prefix, key string, build func(ctx context.Context, dst string) error) (string, error) {
	final := filepath.Join(dir, prefix+key+".ext4")
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := flock(ctx, lock); err != nil {
		return "", err
	}
	if _, err := os.Stat(final); err == nil {
		return final, nil // built while we waited
	}
	tmp := final + ".tmp"
	os.Remove(tmp)
	if err := build(ctx, tmp); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(dir, prefix+"*.ext4"))
	for _, o := range old {
		if o != final {
			os.Remove(o) // a running VM keeps its open file
		}
	}
	return final, nil
}

// flock takes an exclusive lock on f, giving up when ctx ends.
func flock(ctx context.Context, f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for another process building a disk: %v", errdefs.ErrDeadlineExceeded, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// treeSize estimates the bytes and inodes an ext4 copy of the trees needs.
func treeSize(roots ...string) (bytes int64, inodes int64, err error) {
	for _, r := range roots {
		err = filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			inodes++
			if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
				if fi, err := d.Info(); err == nil {
					bytes += (fi.Size() + 4095) &^ 4095
				}
			} else if d.IsDir() {
				bytes += 4096
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return bytes, inodes, nil
}

// mkfs makes dst an ext4 image of dir's contents, sized for them (sparse).
// extra is added to the estimate (free space for a writable disk).
func mkfs(ctx context.Context, dst, dir string, sizeBytes, inodes int64, label string) error {
	ctx, cancel := context.WithTimeout(ctx, mkfsTimeout)
	defer cancel()
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	size := (sizeBytes + (1 << 20) - 1) &^ ((1 << 20) - 1)
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return err
	}
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-L", label,
		"-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
		"-N", fmt.Sprint(inodes), "-m", "0"}
	if dir != "" {
		args = append(args, "-d", dir)
	}
	args = append(args, dst)
	cmd := exec.CommandContext(ctx, "mkfs.ext4", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "E2FSPROGS_FAKE_TIME=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mkfs.ext4 %s: %w: %s", filepath.Base(dst), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// withBinds makes a staging directory whose entries are read-only bind
// mounts of host directories, plus symlinks and empty directories, and runs
// fn on it (mkfs.ext4 -d walks bind mounts like directories).
//
// The binds exist only in a private mount namespace of one OS thread,
// which fn (and the processes it starts, which fork from that thread)
// sees; the thread is never given back to the Go scheduler, so the
// namespace and its mounts vanish when fn returns, or with the process if
// it is killed. Nothing is ever mounted in the host's namespace, so no
// mount can leak, and removing the stage can never reach into /usr.
func withBinds(stage string, binds map[string]string, links map[string]string, dirs []string, fn func() error) error {
	if mountedUnder(stage) {
		return fmt.Errorf("%s has mounts under it (left by an older version?); unmount them first", stage)
	}
	os.RemoveAll(stage) // only empty directories and links, see above
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return err
	}
	defer func() {
		if !mountedUnder(stage) {
			os.RemoveAll(stage)
		}
	}()
	// The stage's mode becomes the disk's root directory's.
	if err := os.Chmod(stage, 0o755); err != nil {
		return err
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			return err
		}
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(stage, name)); err != nil {
			return err
		}
	}
	names := make([]string, 0, len(binds))
	for n := range binds {
		names = append(names, n)
		if err := os.MkdirAll(filepath.Join(stage, n), 0o755); err != nil {
			return err
		}
	}
	sort.Strings(names)
	return inPrivateNS(func() error {
		for _, name := range names {
			dst := filepath.Join(stage, name)
			if err := unix.Mount(binds[name], dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
				return fmt.Errorf("binding %s: %w", binds[name], err)
			}
			if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("making %s read-only: %w", dst, err)
			}
		}
		return nil
	}, fn)
}

// inPrivateNS runs setup and then fn on one OS thread in a new, private
// mount namespace. Processes fn starts fork from that thread and share the
// namespace. Afterwards the thread goes back to the original namespace and
// working directory (unsharing the mount namespace also unshares the
// thread's working directory, and a setns leaves it at "/": relative paths
// opened on it later would resolve from the root), and then it ends with
// its goroutine, never serving other goroutines with a private fs_struct.
// The main thread cannot end: it is given back once restored, and if that
// fails it is never unlocked, so it stays wedged rather than serve others
// in the wrong namespace. Nothing is mounted in the host's namespace.
func inPrivateNS(setup, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/mnt")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		cwd, err := os.Open(".")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer cwd.Close()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("private mount namespace: %w", err)
			return
		}
		defer func() {
			if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNS) == nil && unix.Fchdir(int(cwd.Fd())) == nil &&
				unix.Gettid() == unix.Getpid() {
				runtime.UnlockOSThread() // the main thread, restored
			}
		}()
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- fmt.Errorf("private mount namespace: %w", err)
			return
		}
		if err := setup(); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// rootDirs are created (empty) at the top of every lower disk, so the
// guest can mount on them even when the root is read-only.
var rootDirs = []string{"dev", "proc", "sys", "run", "tmp", "root", "home", "var/tmp", "mnt", "opt", "srv"}

// hostUsrDisk returns the host image's usr disk, building it if needed.
// With allowStale, a disk built from an older state of the host is used
// rather than spending minutes (more than a start may take) on a new one;
// stale says so. `agentkernel setup` (Prepare) always builds.
func hostUsrDisk(ctx context.Context, cacheDir string, hv *image.HostView, allowStale bool) (p string, stale bool, err error) {
	dir := filepath.Join(cacheDir, "disks")
	key := hostKey(hv)
	if allowStale {
		if _, err := os.Stat(filepath.Join(dir, "host-usr-"+key+".ext4")); err != nil {
			old, _ := filepath.Glob(filepath.Join(dir, "host-usr-*.ext4"))
			var newest string
			var at time.Time
			for _, o := range old {
				if fi, err := os.Stat(o); err == nil && fi.ModTime().After(at) {
					newest, at = o, fi.ModTime()
				}
			}
			if newest != "" {
				return newest, true, nil
			}
		}
	}
	p, err = ensureDisk(ctx, dir, "host-usr-", key, func(ctx context.Context, dst string) error {
		binds := map[string]string{}
		for _, b := range hv.Binds {
			binds[strings.TrimPrefix(b, "/")] = b
		}
		bytes, inodes, err := treeSize(hv.Binds...)
		if err != nil {
			return err
		}
		stage := dst + ".stage"
		return withBinds(stage, binds, hv.Symlinks, rootDirs, func() error {
			return mkfs(ctx, dst, stage, bytes+bytes/8+(256<<20), inodes+inodes/8+4096, "ak-host-usr")
		})
	})
	return p, false, err
}

// etcDisk returns a disk holding the store's scrubbed /etc as etc/.
func etcDisk(ctx context.Context, storeDir string, etc string) (string, error) {
	real, err := filepath.EvalSymlinks(etc)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(real))
	return ensureDisk(ctx, filepath.Join(storeDir, "microvm-disks"), "host-etc-", hex.EncodeToString(sum[:12]), func(ctx context.Context, dst string) error {
		bytes, inodes, err := treeSize(real)
		if err != nil {
			return err
		}
		stage := dst + ".stage"
		return withBinds(stage, map[string]string{"etc": real}, nil, nil, func() error {
			return mkfs(ctx, dst, stage, bytes*2+(16<<20), inodes*2+1024, "ak-host-etc")
		})
	})
}

// writableDisk creates the sandbox's writable disk if it does not exist
// (it keeps the sandbox's files across stop and start).
func writableDisk(ctx context.Context, p string, sizeMB int) error {
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	tmp := p + ".tmp"
	if err := mkfs(ctx, tmp, "", int64(sizeMB)<<20, int64(sizeMB)*64, "ak-rw"); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, p)
}

// dirDisk makes dst a disk holding a copy of the host directory src, for
// a read-only --dir: the guest kernel has no 9p and virtiofsd is not used,
// so the sandbox sees src as it was at start (a copy, rebuilt at every
// start), not live.
func dirDisk(ctx context.Context, dst, src string) error {
	fi, err := os.Stat(src)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("host directory %s: not a directory (%v)", src, err)
	}
	bytes, inodes, err := treeSize(src)
	if err != nil {
		return err
	}
	stage := dst + ".stage"
	if mountedUnder(stage) {
		return fmt.Errorf("%s has mounts under it; unmount them first", stage)
	}
	os.RemoveAll(stage)
	if err := os.Mkdir(stage, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(stage) // an empty directory in this namespace
	os.Remove(dst)
	return inPrivateNS(func() error {
		if err := unix.Mount(src, stage, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("binding %s: %w", src, err)
		}
		return unix.Mount("", stage, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
	}, func() error {
		return mkfs(ctx, dst, stage, bytes+bytes/4+(16<<20), inodes+inodes/4+256, "ak-dir")
	})
}

// mountedUnder reports whether anything is mounted at or below dir in
// this process's mount namespace.
func mountedUnder(dir string) bool {
	ms, err := mountinfo.Self()
	if err != nil {
		return true // cannot tell: be safe
	}
	return len(mountinfo.Under(ms, dir)) > 0
}
