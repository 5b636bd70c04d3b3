package safetar

import "golang.org/x/sys/unix"

// openat2Dir opens the directory rel beneath root with openat2, refusing
// any symlink and any escape.
func openat2Dir(root int, rel string) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 16 {
		fd, err := unix.Openat2(root, rel, how)
		if err != unix.EAGAIN && err != unix.EINTR { // EAGAIN: a concurrent rename; retry
			return fd, err
		}
	}
	return -1, unix.EAGAIN
}

// mkfifoat makes the FIFO base in dirfd, mode 0600.
func mkfifoat(dirfd int, base string) error {
	return unix.Mknodat(dirfd, base, unix.S_IFIFO|0o600, 0)
}
