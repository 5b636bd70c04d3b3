package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/mountinfo"
	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// layout names the files of one sandbox: all under its StateDir except the
// rootfs, which must be reachable by the mapped root (see the package doc).
type layout struct {
	bundle   string // bundle/: config.json
	rootfs   string // <RootfsDir>/<id>: skeleton (host image) or overlay mount
	agentRun string // agent-run/: bound at /.agentkernel/run
	tmp      string // tmp/: bound at /tmp, made afresh at each start
	persist  string // persist/: /root, /home, /var/tmp of the host image
	upper    string // overlay/upper: the copy-on-write layer of an imported image
	work     string // overlay/work: overlayfs's scratch directory
	pidFile  string // init.pid, written by runc
	console  string // console.log: the container's stdout and stderr
	sysfs    string // <RootfsDir>/../sysfs/<id>: a gateway sandbox's /sys (see network.go)
	netFiles string // net/: resolv.conf and CA files, bound at backend.NetFilesDir
	disk     string // disk/: the writable disk's mount point (see disk.go)
	diskImg  string // disk.ext4: the writable disk
}

func layoutOf(stateDir, rootfsDir, id string) layout {
	return layout{
		bundle:   filepath.Join(stateDir, "bundle"),
		rootfs:   filepath.Join(rootfsDir, id),
		agentRun: filepath.Join(stateDir, "agent-run"),
		tmp:      filepath.Join(stateDir, "tmp"),
		persist:  filepath.Join(stateDir, "persist"),
		upper:    filepath.Join(stateDir, "overlay", "upper"),
		work:     filepath.Join(stateDir, "overlay", "work"),
		pidFile:  filepath.Join(stateDir, "init.pid"),
		console:  filepath.Join(stateDir, "console.log"),
		sysfs:    filepath.Join(filepath.Dir(rootfsDir), "sysfs", id),
		netFiles: filepath.Join(stateDir, "net"),
		disk:     filepath.Join(stateDir, diskMount),
		diskImg:  filepath.Join(stateDir, diskImage),
	}
}

// persistent directories of the host image: sandbox path, directory name
// under persist/, mode.
var persistent = []struct {
	path, name string
	mode       os.FileMode
}{
	{"/root", "root", 0o700},
	{"/home", "home", 0o755},
	{"/var/tmp", "var-tmp", 0o777 | os.ModeSticky},
	// Where agents work and source_url is cloned (sandbox.SourceDir).
	{"/workspace", "workspace", 0o755},
}

// mkdirOwned creates dir (if missing) owned by uid:gid with mode. An
// existing entry must be a directory; it is left as it is.
func mkdirOwned(dir string, uid, gid int, mode os.FileMode) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		fi, lerr := os.Lstat(dir)
		if lerr != nil {
			return lerr
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", dir)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Lchown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// prepareHostRootfs builds a fresh skeleton for the host image at l.rootfs
// and returns the image's mounts. The skeleton is owned by host root, so
// root in the sandbox cannot change it (it appears as nobody's, read-only);
// writable places are /tmp and /run (fresh tmpfs), and /root, /home,
// /var/tmp and /workspace, bound from persist/ so they survive a restart. readOnly binds
// those read-only too. targets are the user mounts' paths: their mount
// points are made in the skeleton unless they lie under another mount.
func prepareHostRootfs(l layout, hv *image.HostView, idm oci.IDMap, readOnly bool, targets []string) ([]specs.Mount, error) {
	if err := freshDir(l.rootfs); err != nil {
		return nil, err
	}
	var mounts []specs.Mount
	covered := []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/etc"}
	dirs := []string{"proc", "sys", "dev", "tmp", "run", "etc", "var", ".agentkernel", ".agentkernel/run", ".agentkernel/net"}
	for _, b := range hv.Binds {
		dirs = append(dirs, strings.TrimPrefix(b, "/"))
		mounts = append(mounts, oci.BindMount(b, b, true))
		covered = append(covered, b)
	}
	mounts = append(mounts,
		oci.BindMount(hv.Etc, "/etc", true),
		specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=755", "size=65536k"}},
	)
	if err := os.Mkdir(l.persist, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	uid, gid := int(idm.HostUID), int(idm.HostGID)
	for _, p := range persistent {
		src := filepath.Join(l.persist, p.name)
		if err := mkdirOwned(src, uid, gid, p.mode); err != nil {
			return nil, fmt.Errorf("persistent %s: %w", p.path, err)
		}
		dirs = append(dirs, strings.TrimPrefix(p.path, "/"))
		mounts = append(mounts, oci.BindMount(src, p.path, readOnly))
		covered = append(covered, p.path)
	}
	for _, t := range targets {
		if !underAny(t, covered) {
			dirs = append(dirs, strings.TrimPrefix(t, "/"))
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(l.rootfs, d), 0o755); err != nil {
			return nil, err
		}
	}
	// runc gives a tmpfs the mode of the directory it covers.
	if err := os.Chmod(filepath.Join(l.rootfs, "tmp"), 0o777|os.ModeSticky); err != nil {
		return nil, err
	}
	// The agent binary is bound onto a file.
	if err := os.WriteFile(filepath.Join(l.rootfs, oci.AgentBinary), nil, 0o755); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(hv.Symlinks))
	for n := range hv.Symlinks {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := os.Symlink(hv.Symlinks[n], filepath.Join(l.rootfs, n)); err != nil {
			return nil, err
		}
	}
	return mounts, nil
}

func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// maxOverlayOptions is what mount(2) accepts as one option string (a page).
const maxOverlayOptions = 4000

// mountOverlay mounts layers (lowest first) with the sandbox's own upper
// layer at l.rootfs. The upper layer's root belongs to the mapped root so
// root in the sandbox owns "/"; it persists in StateDir across restarts.
func mountOverlay(l layout, layers []string, idm oci.IDMap) error {
	if len(layers) == 0 {
		return fmt.Errorf("%w: an image with no layers", errdefs.ErrInvalidArgument)
	}
	lower := make([]string, 0, len(layers))
	for i := len(layers) - 1; i >= 0; i-- { // overlayfs lists the top layer first
		d := layers[i]
		if !filepath.IsAbs(d) || strings.ContainsAny(d, ":,\\") {
			return fmt.Errorf("%w: layer path %q cannot be used with overlayfs", errdefs.ErrInvalidArgument, d)
		}
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("%w: layer %s: not a directory (%v)", errdefs.ErrNotFound, d, err)
		}
		lower = append(lower, d)
	}
	if err := os.MkdirAll(filepath.Dir(l.upper), 0o700); err != nil {
		return err
	}
	if err := mkdirOwned(l.upper, int(idm.HostUID), int(idm.HostGID), 0o755); err != nil {
		return err
	}
	if err := mkdirOwned(l.work, 0, 0, 0o700); err != nil {
		return err
	}
	if err := freshDir(l.rootfs); err != nil {
		return err
	}
	opts := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + l.upper + ",workdir=" + l.work
	if len(opts) > maxOverlayOptions {
		return fmt.Errorf("%w: too many layers for one overlay mount (%d bytes of options)", errdefs.ErrInvalidArgument, len(opts))
	}
	if err := unix.Mount("overlay", l.rootfs, "overlay", unix.MS_NODEV|unix.MS_NOSUID, opts); err != nil {
		return fmt.Errorf("%w: mounting overlayfs at %s: %v", errdefs.ErrFailedPrecondition, l.rootfs, err)
	}
	return nil
}

// freshDir replaces dir with an empty directory (0755, host root). It
// refuses while anything is mounted at or below dir, so it can never delete
// through a mount.
func freshDir(dir string) error {
	if err := removeRootfs(dir); err != nil {
		return err
	}
	return os.Mkdir(dir, 0o755)
}

// removeRootfs unmounts and deletes a rootfs directory.
func removeRootfs(dir string) error {
	if err := unmountAll(dir); err != nil {
		return err
	}
	if mps, err := mountsUnder(dir); err != nil || len(mps) > 0 {
		return fmt.Errorf("%s: still mounted (%v, %v)", dir, mps, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

// ensureTraversable creates dir (0711) if missing and checks that every
// directory from / down to dir lets others search it, as the mapped root
// must reach the rootfs below it. It changes no existing directory.
func ensureTraversable(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%w: %s is mode %v; the rootfs directory %s needs every parent searchable by others (chmod o+x %s)",
				errdefs.ErrFailedPrecondition, d, fi.Mode().Perm(), dir, d)
		}
		if d == "/" {
			return nil
		}
	}
}

// unmountAll unmounts everything at or below dir, deepest first, retrying
// a busy mount briefly before detaching it lazily.
func unmountAll(dir string) error {
	for range 8 { // a mount point may be stacked several times
		mps, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			err := unix.Unmount(mp, unix.UMOUNT_NOFOLLOW)
			for i := 0; errors.Is(err, unix.EBUSY) && i < 20; i++ {
				time.Sleep(10 * time.Millisecond)
				err = unix.Unmount(mp, unix.UMOUNT_NOFOLLOW)
			}
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(mp, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
			}
			if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmounting %s: %w", mp, err)
			}
		}
	}
	return fmt.Errorf("%s: mounts remain after unmounting", dir)
}

// userTargets lists the paths of a spec's user mounts.
func userTargets(s *backend.Spec) []string {
	t := make([]string, 0, len(s.Mounts))
	for _, m := range s.Mounts {
		t = append(t, m.Path)
	}
	return t
}

// mountsUnder returns the mount points at or below dir in this mount
// namespace, deepest first.
func mountsUnder(dir string) ([]string, error) {
	ms, err := mountinfo.Self()
	if err != nil {
		return nil, err
	}
	return mountinfo.DeepestFirst(mountinfo.Under(ms, dir)), nil
}
