package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// exportExclude are the top-level paths an export leaves out: the kernel's
// and runc's mount points (only their empty directories in the layers)
// and agentkernel's own directory.
var exportExclude = []string{"proc", "sys", "dev", agentDir}

// ExportSandbox writes the whole filesystem of a container sandbox to w as
// a tar: its image's layers and its upper directory merged by a private,
// read-only overlay mount made for the export (lowerdir=upper:layers…), so
// whiteouts and opaque directories are applied by overlayfs itself and
// nothing is read through the sandbox's own mounts (/proc, /sys, /dev,
// tmpfs /tmp and /run are never in it; /proc, /sys, /dev and /.agentkernel
// are left out altogether). A running sandbox is exported as it is at the
// time, nothing paused. Owners are shifted back to the sandbox's view.
// Sandboxes of the host image are refused like for commit.
func (b *Builder) ExportSandbox(ctx context.Context, name string, w io.Writer) error {
	if b.sbx == nil {
		return fmt.Errorf("%w: this daemon cannot export sandboxes", errdefs.ErrNotImplemented)
	}
	parent, upper, err := b.sandboxLayers(ctx, name)
	if err != nil {
		return err
	}
	var lower []string // top first, as overlayfs lists them
	if fi, err := os.Stat(upper); err == nil && fi.IsDir() {
		lower = append(lower, upper)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("exporting sandbox %s: %w", name, err)
	}
	for i := len(parent.LayerIDs) - 1; i >= 0; i-- {
		lower = append(lower, b.images.LayerDir(parent.LayerIDs[i]))
	}
	for _, d := range lower {
		if strings.ContainsAny(d, ":,\\") {
			return fmt.Errorf("%w: path %q cannot be used with overlayfs", errdefs.ErrInvalidArgument, d)
		}
	}
	if len(lower) == 1 { // overlayfs wants two lower layers without an upper
		return b.images.WriteTree(ctx, w, lower[0], exportExclude)
	}
	opts := "lowerdir=" + strings.Join(lower, ":")
	if len(opts) > 4000 {
		return fmt.Errorf("%w: too many layers for one overlay mount", errdefs.ErrInvalidArgument)
	}
	mnt, err := os.MkdirTemp(filepath.Dir(upper), "export-")
	if err != nil {
		return fmt.Errorf("exporting sandbox %s: %w", name, err)
	}
	defer os.Remove(mnt)
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("%w: exporting sandbox %s: mounting overlayfs: %v", errdefs.ErrFailedPrecondition, name, err)
	}
	defer func() {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			b.log.Error("unmounting an export overlay", "dir", mnt, "err", err)
		}
	}()
	if err := b.images.WriteTree(ctx, w, mnt, exportExclude); err != nil {
		return fmt.Errorf("exporting sandbox %s: %w", name, err)
	}
	return nil
}
