//go:build !linux

package safetar

import "golang.org/x/sys/unix"

// Off Linux (the CLI on macOS extracting what it copies out of a sandbox)
// there is no openat2: ENOSYS makes openDir walk one component at a time
// with O_NOFOLLOW, the same fallback old Linux kernels get.
func openat2Dir(int, string) (int, error) { return -1, unix.ENOSYS }

func mkfifoat(int, string) error { return errNoFifo }
