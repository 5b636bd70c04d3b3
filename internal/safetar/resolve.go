package safetar

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// noOpenat2 is set once openat2 has returned ENOSYS (old kernels, some
// seccomp profiles, some gVisor versions); from then on the manual walk is
// used. Tests set it to exercise the walk.
var noOpenat2 atomic.Bool

// maxNameBytes bounds an entry name or link target.
const maxNameBytes = 4096

// CleanName validates an archive entry name (or hard link target) and
// returns it as slash-separated components without "." or empty parts; ""
// means the extraction directory itself. It is the one sanitiser of tar
// entry names in agentkernel: the agent's and CLI's extraction here, and
// image layers (internal/image/unpack) for the entries they handle
// themselves.
func CleanName(name string) (string, error) {
	if len(name) > maxNameBytes {
		return "", fmt.Errorf("%w: entry name of %d bytes is too long", errdefs.ErrInvalidArgument, len(name))
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: entry name %.60q contains NUL", errdefs.ErrInvalidArgument, name)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute entry name %.60q", errdefs.ErrInvalidArgument, name)
	}
	parts := strings.Split(name, "/")
	out := parts[:0]
	for _, p := range parts {
		switch p {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: entry name %.60q contains \"..\"", errdefs.ErrInvalidArgument, name)
		}
		out = append(out, p)
	}
	return strings.Join(out, "/"), nil
}

// openDir opens the directory rel (a CleanName result) beneath root without
// following any symlink, creating missing directories (mode 0755 less the
// umask, as tar does for parents the archive does not list) when create is
// set. The caller closes the fd.
func openDir(root int, rel string, create bool) (int, error) {
	if rel == "" {
		return unix.Dup(root)
	}
	if !noOpenat2.Load() {
		fd, err := openat2Dir(root, rel)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOSYS):
			noOpenat2.Store(true)
		case errors.Is(err, unix.ENOENT) && create:
			// fall through to the walk, which creates what is missing
		default:
			return -1, pathErr(rel, err)
		}
	}
	return walkDir(root, rel, create)
}

// walkDir opens rel one component at a time; O_NOFOLLOW makes a symlink
// component fail (ELOOP or ENOTDIR), and CleanName has removed "..".
func walkDir(root int, rel string, create bool) (int, error) {
	fd, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	for _, comp := range strings.Split(rel, "/") {
		next, err := openComponent(fd, comp, create)
		unix.Close(fd)
		if err != nil {
			return -1, pathErr(rel, err)
		}
		fd = next
	}
	return fd, nil
}

func openComponent(dirfd int, comp string, create bool) (int, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, comp, flags, 0)
	if err == unix.ENOENT && create {
		if err := unix.Mkdirat(dirfd, comp, 0o755); err != nil && err != unix.EEXIST {
			return -1, err
		}
		fd, err = unix.Openat(dirfd, comp, flags, 0)
	}
	return fd, err
}

// pathErr explains why a parent directory could not be used.
func pathErr(rel string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.EXDEV), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("%w: %q: a parent is a symlink or not a directory (%v)", errdefs.ErrInvalidArgument, rel, err)
	}
	return fmt.Errorf("open %q: %w", rel, err)
}
