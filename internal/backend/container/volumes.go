package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/loopfs"
)

// mountVolumes mounts each of s's named volumes on the host for this
// sandbox alone, under its state directory (volumes/N/mnt), and returns
// the bind mounts that put them in the sandbox. The image is loop-mounted
// (read-only, without journal replay, when the use is) and given an
// idmapped view in which the ids on the image, the sandbox's own (root 0),
// show as the host ids of the sandbox's user namespace; the plain mount is
// then detached, so the view holds the filesystem and, through it, the
// autoclear loop device, until unmountVolumes and the container's exit.
// The ext4's size is the limit: writing past it is ENOSPC in the sandbox.
//
// The image is mounted with loopfs.MountShared: when another sandbox on
// this host has it mounted already (a read-only or shared use, which the
// daemon allows side by side), this mount is the same ext4 instance
// through the same loop device, never a second writer. gVisor's gofer
// serves the bind from the same host mount.
func (b *Backend) mountVolumes(s *backend.Spec) (_ []backend.Mount, retErr error) {
	if len(s.Volumes) == 0 {
		return nil, nil
	}
	defer func() {
		if retErr != nil {
			unmountVolumes(s.StateDir)
		}
	}()
	idm := b.opts.IDMap.WithDefaults()
	userns, stop, err := loopfs.IDMapUserns(0, idm.HostUID, 0, idm.HostGID, idm.Size)
	if err != nil {
		return nil, err
	}
	defer stop()
	var out []backend.Mount
	for i, v := range s.Volumes {
		dir := filepath.Join(s.StateDir, "volumes", strconv.Itoa(i))
		raw, mnt := filepath.Join(dir, "raw"), filepath.Join(dir, "mnt")
		for _, d := range []string{raw, mnt} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, err
			}
		}
		data := ""
		if v.ReadOnly {
			data = "noload"
		}
		if err := loopfs.MountShared(v.Disk, raw, "ext4", v.ReadOnly, unix.MS_NODEV|unix.MS_NOSUID, data); err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		err := loopfs.IDMappedMount(raw, mnt, userns, v.ReadOnly)
		if uerr := unix.Unmount(raw, unix.MNT_DETACH); err == nil && uerr != nil {
			err = uerr
		}
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		out = append(out, backend.Mount{HostPath: mnt, Path: v.Path, ReadOnly: v.ReadOnly})
	}
	return out, nil
}

// unmountVolumes undoes mountVolumes; idempotent.
func unmountVolumes(stateDir string) error {
	dirs, _ := filepath.Glob(filepath.Join(stateDir, "volumes", "*"))
	var errs []error
	for _, d := range dirs {
		for _, m := range []string{"mnt", "raw"} {
			if err := loopfs.Unmount(filepath.Join(d, m)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
