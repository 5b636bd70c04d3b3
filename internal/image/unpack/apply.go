package unpack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// opaqueXattr marks a directory whose lower layers are hidden.
const opaqueXattr = "trusted.overlay.opaque"

// apply makes the whiteouts, opaque markers, xattrs and implicit parents
// the filter collected, after safetar has extracted the rest into dir.
// Every path is opened beneath dir one component at a time with
// O_NOFOLLOW, so a symlink in the layer can never redirect a change.
func (f *filter) apply(dir string) error {
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("unpack: open %s: %w", dir, err)
	}
	defer unix.Close(root)
	touched := map[string]bool{} // listed directories whose times changed

	for _, rel := range f.whiteouts {
		if err := f.whiteout(root, rel); err != nil {
			return fmt.Errorf("whiteout %.200q: %w", rel, err)
		}
		touched[parentOf(rel)] = true
	}
	for _, rel := range f.opaque {
		fd, err := f.openDir(root, rel, true)
		if err != nil {
			return fmt.Errorf("opaque directory %.200q: %w", rel, err)
		}
		err = unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("opaque directory %.200q: setting %s (needs root): %w", rel, opaqueXattr, err)
		}
		f.stats.OpaqueDirs++
		touched[parentOf(rel)] = true
	}
	for _, rel := range sortedKeys(f.xattrs) {
		if err := f.setXattrs(root, rel, f.xattrs[rel]); err != nil {
			return fmt.Errorf("extended attributes of %.200q: %w", rel, err)
		}
	}
	// Parents the archive did not list were made by the extractor as
	// host root, 0700: give them to the mapped root.
	for _, rel := range sortedKeys(f.parents) {
		if _, ok := f.listed[rel]; ok {
			continue
		}
		fd, err := f.openDir(root, rel, false)
		if err != nil {
			return fmt.Errorf("directory %.200q: %w", rel, err)
		}
		err = fixDir(fd, int(f.opts.Shift.UID), int(f.opts.Shift.GID), 0o755)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("directory %.200q: %w", rel, err)
		}
	}
	if err := fixDir(root, f.rootUID, f.rootGID, f.rootMode); err != nil {
		return fmt.Errorf("the layer's root: %w", err)
	}
	for rel := range touched {
		times, ok := f.listed[rel]
		if !ok {
			continue
		}
		fd, err := f.openDir(root, rel, false)
		if err != nil {
			return fmt.Errorf("directory %.200q: %w", rel, err)
		}
		err = unix.Futimes(fd, timevals(times))
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("directory %.200q: %w", rel, err)
		}
	}
	return nil
}

// whiteout makes the overlay whiteout rel: a character device 0/0.
func (f *filter) whiteout(root int, rel string) error {
	dir, base := path.Split(rel)
	pfd, err := f.openDir(root, strings.TrimSuffix(dir, "/"), true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	err = unix.Mknodat(pfd, base, unix.S_IFCHR|0o600, 0)
	switch {
	case err == unix.EEXIST:
		// The layer has rel itself: it hides the lower layers' rel
		// already, and a whiteout applies only to lower layers.
		return nil
	case err == unix.EPERM:
		return fmt.Errorf("%w: making an overlay whiteout needs root (CAP_MKNOD): %v", errdefs.ErrFailedPrecondition, err)
	case err != nil:
		return err
	}
	f.stats.Whiteouts++
	return unix.Fchownat(pfd, base, int(f.opts.Shift.UID), int(f.opts.Shift.GID), unix.AT_SYMLINK_NOFOLLOW)
}

// setXattrs sets xs on rel without following rel if it is a symlink.
// Attributes the kernel refuses for this file (EPERM: user.* on a symlink;
// EINVAL: a malformed capability) are dropped and counted.
func (f *filter) setXattrs(root int, rel string, xs []xattr) error {
	dir, base := path.Split(rel)
	pfd, err := f.openDir(root, strings.TrimSuffix(dir, "/"), false)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	// lsetxattr does not follow the last component; /proc/self/fd/N is
	// the parent directory we hold open.
	p := "/proc/self/fd/" + strconv.Itoa(pfd) + "/" + base
	for _, x := range xs {
		err := unix.Lsetxattr(p, x.name, x.value, 0)
		switch {
		case err == nil:
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EINVAL):
			f.stats.DroppedXattrs++
		default:
			return fmt.Errorf("setting %s: %w", x.name, err)
		}
	}
	return nil
}

// openDir opens the directory rel beneath root, one component at a time
// and never through a symlink. With create, missing directories are made
// owned by the mapped root with mode 0755. The caller closes the fd.
func (f *filter) openDir(root int, rel string, create bool) (int, error) {
	fd, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	if rel == "" {
		return fd, nil
	}
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	for _, comp := range strings.Split(rel, "/") {
		next, err := unix.Openat(fd, comp, flags, 0)
		if err == unix.ENOENT && create {
			if err = unix.Mkdirat(fd, comp, 0o755); err == nil || err == unix.EEXIST {
				if next, err = unix.Openat(fd, comp, flags, 0); err == nil {
					err = fixDir(next, int(f.opts.Shift.UID), int(f.opts.Shift.GID), 0o755)
				}
			}
		}
		unix.Close(fd)
		if err != nil {
			if next >= 0 {
				unix.Close(next)
			}
			if err == unix.ELOOP || err == unix.ENOTDIR {
				return -1, fmt.Errorf("%w: %q: a parent is a symlink or not a directory", errdefs.ErrInvalidArgument, rel)
			}
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

func fixDir(fd, uid, gid int, mode uint32) error {
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return err
	}
	return unix.Fchmod(fd, mode)
}

// keepXattr says whether an xattr from a layer is kept, and its value.
func keepXattr(name string, value []byte, shift IDShift) ([]byte, bool) {
	switch {
	case strings.HasPrefix(name, "user.") && len(name) <= 255 && len(name) > len("user."):
		return value, true
	case name == "security.capability":
		switch len(value) {
		case 12, 20: // VFS_CAP_REVISION_1, _2: valid in every namespace
			return value, true
		case 24: // VFS_CAP_REVISION_3: a root id, shifted like owners
			rootID := binary.LittleEndian.Uint32(value[20:])
			if rootID >= shift.Size {
				return nil, false
			}
			v := append([]byte(nil), value...)
			binary.LittleEndian.PutUint32(v[20:], rootID+shift.UID)
			return v, true
		}
	}
	return nil, false
}

func parentOf(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// timevals converts access and modification times, clamped to what the
// kernel takes.
func timevals(t [2]time.Time) []unix.Timeval {
	tv := func(t time.Time) unix.Timeval {
		sec := min(max(t.Unix(), 0), 253402300799)
		return unix.Timeval{Sec: sec, Usec: int64(t.Nanosecond() / 1000)}
	}
	return []unix.Timeval{tv(t[0]), tv(t[1])}
}
