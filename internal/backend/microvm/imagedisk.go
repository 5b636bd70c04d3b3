package microvm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/loopfs"
	"github.com/agentkernel/agentkernel/internal/oci"
)

// Imported images. The image store keeps their layers unpacked with owners
// shifted into the sandboxes' mapped range (host uid 100000 is root in a
// container), whiteouts as overlay character devices. A microVM has no
// user namespace to undo the shift, so the disk is built from a view in
// which the shift is undone and the layers are merged: each layer is given
// an idmapped mount (its user namespace maps the range's start to 0, so a
// file of uid 100000 shows as uid 0), an overlay of them (top first)
// resolves whiteouts and opaque directories, and mkfs.ext4 -d copies the
// result. All of it happens in a private mount namespace (inPrivateNS).

// imageDisk returns the disk of an imported image with these layers,
// building it if needed (cached in the store, by the layers' paths).
func imageDisk(ctx context.Context, storeDir string, layers []string, idm oci.IDMap) (string, error) {
	idm = idm.WithDefaults()
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d:%d:%d\n%s", idm.HostUID, idm.HostGID, idm.Size, strings.Join(layers, "\n"))))
	return ensureDisk(ctx, filepath.Join(storeDir, "microvm-disks"), "image-"+hex.EncodeToString(sum[:4])+"-", hex.EncodeToString(sum[4:16]), func(ctx context.Context, dst string) error {
		bytes, inodes, err := treeSize(layers...)
		if err != nil {
			return err
		}
		userns, stop, err := loopfs.IDMapUserns(idm.HostUID, 0, idm.HostGID, 0, idm.Size)
		if err != nil {
			return err
		}
		defer stop()
		stage, lowers := dst+".stage", dst+".layers"
		for _, d := range []string{stage, lowers} {
			if mountedUnder(d) {
				return fmt.Errorf("%s has mounts under it; unmount them first", d)
			}
			os.RemoveAll(d)
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
			defer os.RemoveAll(d) // empty directories in this namespace
		}
		var mounted []string
		for i := range layers {
			p := filepath.Join(lowers, strconv.Itoa(i))
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			mounted = append(mounted, p)
		}
		return inPrivateNS(func() error {
			for i, l := range layers {
				if err := loopfs.IDMappedMount(l, mounted[i], userns, true); err != nil {
					return fmt.Errorf("layer %s: %w", l, err)
				}
			}
			if len(layers) == 1 {
				return unix.Mount(mounted[0], stage, "", unix.MS_BIND, "")
			}
			top := make([]string, len(mounted))
			for i, m := range mounted {
				top[len(mounted)-1-i] = m
			}
			return unix.Mount("overlay", stage, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(top, ":"))
		}, func() error {
			return mkfs(ctx, dst, stage, bytes+bytes/4+(64<<20), inodes+inodes/4+4096, "ak-image")
		})
	})
}
