package image

// Hard links to files of lower layers.
//
// image-spec lets a layer hard-link a file that only a lower layer holds,
// and real builders produce such layers. Our layers are unpacked once,
// keyed by diff-id, into directories shared by every image that has them;
// a layer's directory must therefore depend on the layer's own content
// only. The same layer (same diff-id) can sit on different lower layers in
// two images, and its link then names a different file in each: copying
// the target into the layer's shared directory would hand one image's file
// to the other, and would make the unpack depend on lower layers being
// present (and not garbage-collected) while it runs.
//
// So unpack leaves such links out and records them (unpack.LowerLink, kept
// in the layer's LayerInfo), and a pull adds, right above each layer that
// has some, a "links layer": a directory holding a copy of each link's
// target as the lower layers show it (overlay rules: top-down, whiteouts
// and opaque directories honoured, no symlink followed, content, mode,
// owner, xattrs and times kept), plus the parent directories it needs. Its
// id is a hash of the ids of the layers below and including the one it
// serves, so it is shared by every image with that stack, garbage-collected
// like any layer (images list it in LayerIDs, with no blob) and rebuilt
// identically if it is ever removed. Every backend sees it as one more
// layer directory, so overlayfs (container, gVisor) and the microVM disk
// builder need nothing special.
//
// Copying rather than hard-linking across layer directories costs the
// targets' bytes once per stack, but keeps each layer directory's inodes
// its own: a hard link between two layers' directories would let pruning
// one layer leave its inode alive in another, let a later re-unpack of a
// layer diverge from the inode another layer shares, and tie a sandbox's
// view of one layer to writes through another (overlayfs copies up per
// path, not per inode). A copy's link count differs from the original's
// (links made by one layer to one target share one inode in the links
// layer); nothing in a sandbox can tell otherwise.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/image/unpack"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// linksLayerID is the id of the links layer above the last of stack (layer
// ids, lowest first).
func linksLayerID(stack []string) string {
	h := sha256.New()
	io.WriteString(h, "agentkernel links layer v1\n")
	for _, id := range stack {
		io.WriteString(h, id+"\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// linkLayers inserts a links layer above every layer of out that hard-links
// into lower layers, building those not stored yet. The returned release
// ends the leases that keep the new layers from garbage collection until
// out is published.
func (p *pull) linkLayers(out *Image) (size int64, release func(), err error) {
	var releases []func()
	release = func() {
		for _, r := range releases {
			r()
		}
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	var ids []string
	var blobs []Blob
	for i, id := range out.LayerIDs {
		ids = append(ids, id)
		if i < len(out.LayerBlobs) {
			blobs = append(blobs, out.LayerBlobs[i])
		}
		info, err := p.s.layerInfo(id)
		if err != nil || len(info.Links) == 0 {
			continue
		}
		lid := linksLayerID(ids)
		releases = append(releases, p.s.lease([]string{layerKey(lid)}))
		n, err := p.linksLayer(lid, ids, info.Links)
		if err != nil {
			return 0, release, fmt.Errorf("layer %s: %w", id, err)
		}
		size += n
		ids = append(ids, lid)
		blobs = append(blobs, Blob{}) // a layer with no blob, see Compose
	}
	if len(ids) > maxLayers {
		return 0, release, fmt.Errorf("%w: the image has %d layers with its links layers (at most %d)", errdefs.ErrInvalidArgument, len(ids), maxLayers)
	}
	out.LayerIDs, out.LayerBlobs = ids, blobs
	return size, release, nil
}

// linksLayer makes sure the links layer lid for stack (whose last layer has
// links) is stored, and returns its size.
func (p *pull) linksLayer(lid string, stack []string, links []unpack.LowerLink) (int64, error) {
	unlock := p.s.layerLocks.Lock(lid)
	defer unlock()
	if _, err := os.Stat(p.s.dir("layers", lid)); err == nil {
		info, _ := p.s.layerInfo(lid)
		return info.Size, nil
	}
	dir, done, err := p.s.stagingLayer("links-")
	if err != nil {
		return 0, err
	}
	defer done()
	dirs := make([]string, len(stack))
	for i, id := range stack {
		dirs[i] = p.s.dir("layers", id)
	}
	size, err := buildLinks(dir, dirs, links, p.s.shift, p.s.limits.MaxBytes)
	if err != nil {
		return 0, err
	}
	info := LayerInfo{ID: lid, Size: size, Entries: len(links), Unpacked: time.Now().UTC()}
	if err := writeJSON(p.s.dir("layerinfo", lid+".json"), info); err != nil {
		return 0, err
	}
	if err := os.Rename(dir, p.s.dir("layers", lid)); err != nil {
		return 0, fmt.Errorf("publishing links layer %s: %w", lid, err)
	}
	p.addCreated(layerKey(lid))
	return size, nil
}

// linkBuilder fills one links layer. It owns the fds it holds.
type linkBuilder struct {
	out      int   // the links layer's directory
	roots    []int // the stack's layer directories, lowest first; the last has the links
	shift    IDShift
	maxBytes int64
	size     int64
	copied   map[[2]uint64]string // source (dev, ino) -> its path in out
}

// buildLinks fills dir (empty) with the links of the last of layerDirs,
// resolved in the others, and returns the bytes of files copied.
func buildLinks(dir string, layerDirs []string, links []unpack.LowerLink, shift IDShift, maxBytes int64) (int64, error) {
	b := &linkBuilder{shift: shift, maxBytes: maxBytes, copied: map[[2]uint64]string{}, out: -1}
	defer b.close()
	var err error
	if b.out, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return 0, err
	}
	for _, d := range layerDirs {
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		b.roots = append(b.roots, fd)
	}
	// The merged root's attributes are the top layer's: keep them.
	if err := copyAttrs(b.roots[len(b.roots)-1], b.out); err != nil {
		return 0, err
	}
	for _, l := range links {
		if err := b.add(l); err != nil {
			return 0, fmt.Errorf("hard link %.200q to %.200q: %w", l.Path, l.Target, err)
		}
	}
	return b.size, nil
}

func (b *linkBuilder) close() {
	for _, fd := range b.roots {
		unix.Close(fd)
	}
	if b.out >= 0 {
		unix.Close(b.out)
	}
}

// add makes one link in the links layer.
func (b *linkBuilder) add(l unpack.LowerLink) error {
	lower := b.roots[:len(b.roots)-1]
	sfd, base, st, err := resolveMerged(lower, l.Target)
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("%w: the target is a directory", errdefs.ErrInvalidArgument)
	}
	pfd, name, err := b.parents(l.Path)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Unlinkat(pfd, name, 0); err != nil && err != unix.ENOENT {
		return err
	}
	key := [2]uint64{uint64(st.Dev), st.Ino}
	if first, ok := b.copied[key]; ok {
		// Another link to the same file: one inode, as in the original.
		// first's parents are directories this builder made in its own
		// staging directory, so the relative path holds no symlink.
		return unix.Linkat(b.out, first, pfd, name, 0)
	}
	if err := b.copyNode(sfd, base, &st, pfd, name); err != nil {
		return err
	}
	b.copied[key] = l.Path
	return nil
}

// copyNode copies the file base of sfd (stat st) to name in pfd.
func (b *linkBuilder) copyNode(sfd int, base string, st *unix.Stat_t, pfd int, name string) error {
	ts := []unix.Timespec{st.Atim, st.Mtim}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if b.maxBytes > 0 && st.Size > b.maxBytes-b.size {
			return fmt.Errorf("%w: the links layer exceeds %d bytes", errdefs.ErrTooLarge, b.maxBytes)
		}
		b.size += st.Size
		src, err := unix.Openat(sfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		in := os.NewFile(uintptr(src), base)
		defer in.Close()
		dst, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		out := os.NewFile(uintptr(dst), name)
		defer out.Close()
		if n, err := io.Copy(out, io.LimitReader(in, st.Size+1)); err != nil {
			return err
		} else if n != st.Size {
			return fmt.Errorf("%w: the target changed while copied", errdefs.ErrFailedPrecondition)
		}
		if err := copyAttrs(src, dst); err != nil {
			return err
		}
		return out.Close()
	case unix.S_IFLNK:
		// A hard link to a symlink is that symlink (linkat without
		// AT_SYMLINK_FOLLOW): copy the link, never what it names.
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(sfd, base, buf)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(buf[:n]), pfd, name); err != nil {
			return err
		}
		if err := unix.Fchownat(pfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		return unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	case unix.S_IFIFO:
		if err := unix.Mknodat(pfd, name, unix.S_IFIFO|0o600, 0); err != nil {
			return err
		}
		if err := unix.Fchownat(pfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if err := unix.Fchmodat(pfd, name, st.Mode&0o777, 0); err != nil {
			return err
		}
		return unix.UtimesNanoAt(pfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	return fmt.Errorf("%w: the target is not a file, symlink or fifo", errdefs.ErrInvalidArgument)
}

// parents opens (creating) the parent directory of rel in the links
// layer; a directory it creates takes the attributes of the directory the
// stack shows there (overlayfs shows the top layer's), or the mapped root's
// and 0755 if the stack has none. It returns the fd and rel's base name.
func (b *linkBuilder) parents(rel string) (int, string, error) {
	dir, name := splitRel(rel)
	fd, err := unix.Dup(b.out)
	if err != nil {
		return -1, "", err
	}
	if dir == "" {
		return fd, name, nil
	}
	done := ""
	for _, comp := range strings.Split(dir, "/") {
		done = joinRel(done, comp)
		const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		next, err := unix.Openat(fd, comp, flags, 0)
		if err == unix.ENOENT {
			err = b.mkdir(fd, comp, done)
			if err == nil {
				next, err = unix.Openat(fd, comp, flags, 0)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, "", fmt.Errorf("parent %.200q: %w", done, err)
		}
		fd = next
	}
	return fd, name, nil
}

// mkdir makes comp in pfd as the stack shows the directory rel.
func (b *linkBuilder) mkdir(pfd int, comp, rel string) error {
	if err := unix.Mkdirat(pfd, comp, 0o700); err != nil {
		return err
	}
	fd, err := unix.Openat(pfd, comp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sfd, base, st, err := resolveMerged(b.roots, rel)
	if errors.Is(err, errdefs.ErrNotFound) {
		if err := unix.Fchown(fd, int(b.shift.UID), int(b.shift.GID)); err != nil {
			return err
		}
		return unix.Fchmod(fd, 0o755)
	}
	if err != nil {
		return err
	}
	defer unix.Close(sfd)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		// The link's own layer, or one below, has a non-directory here:
		// making a directory would hide it.
		return fmt.Errorf("%w: %.200q is not a directory in the image", errdefs.ErrInvalidArgument, rel)
	}
	src, err := unix.Openat(sfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	return copyAttrs(src, fd)
}

// copyAttrs gives the file or directory dst the owner, mode, xattrs and
// times of src (except overlayfs's own trusted.* markers). chown clears
// setuid bits and file capabilities: mode and xattrs come after it.
func copyAttrs(src, dst int) error {
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	if err := unix.Fchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(dst, st.Mode&0o7777); err != nil {
		return err
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	return unix.Futimes(dst, []unix.Timeval{unix.NsecToTimeval(st.Atim.Nano()), unix.NsecToTimeval(st.Mtim.Nano())})
}

// copyXattrs copies src's extended attributes to dst, except trusted.*
// (overlayfs's markers; unpack keeps none of its own). The layers below
// hold only what unpack kept (user.*, security.capability).
func copyXattrs(src, dst int) error {
	buf := make([]byte, 64<<10)
	n, err := unix.Flistxattr(src, buf)
	if err == unix.ENOTSUP {
		return nil
	}
	if err != nil {
		return err
	}
	val := make([]byte, 64<<10)
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.") {
			continue
		}
		m, err := unix.Fgetxattr(src, name, val)
		if err != nil {
			return fmt.Errorf("reading xattr %s: %w", name, err)
		}
		if err := unix.Fsetxattr(dst, name, val[:m], 0); err != nil {
			return fmt.Errorf("setting xattr %s: %w", name, err)
		}
	}
	return nil
}

// resolveMerged finds rel in the stack roots (layer directories, lowest
// first) as overlayfs would show it: from the top layer down, a whiteout
// (character device 0/0) ends the search, an opaque directory ends it
// below its layer, a non-directory parent ends it, and no symlink is ever
// followed. It returns an fd of the directory holding rel (the caller
// closes it), rel's base name and its lstat. Not found is
// errdefs.ErrNotFound; a parent that is a symlink or file is
// errdefs.ErrInvalidArgument.
func resolveMerged(roots []int, rel string) (int, string, unix.Stat_t, error) {
	comps := strings.Split(rel, "/")
	var st unix.Stat_t
	for i := len(roots) - 1; i >= 0; i-- {
		fd, stop, err := lookupLayer(roots[i], comps, &st)
		if err != nil || fd >= 0 {
			return fd, comps[len(comps)-1], st, err
		}
		if stop != "" {
			return -1, "", st, fmt.Errorf("%w: %.200q was deleted by %s in a layer above the one holding it", errdefs.ErrNotFound, rel, stop)
		}
	}
	return -1, "", st, fmt.Errorf("%w: %.200q is in none of the lower layers", errdefs.ErrNotFound, rel)
}

// lookupLayer looks for comps in one layer directory. It returns an fd of
// the directory holding the last component (stat in st), or -1 and
// what hides the lower layers for this path ("a whiteout", "an opaque
// directory") if anything does.
func lookupLayer(root int, comps []string, st *unix.Stat_t) (fd int, stop string, err error) {
	fd, err = unix.Dup(root)
	if err != nil {
		return -1, "", err
	}
	for k, comp := range comps {
		if err := unix.Fstatat(fd, comp, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			unix.Close(fd)
			if err == unix.ENOENT {
				return -1, stop, nil
			}
			return -1, "", err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			unix.Close(fd)
			return -1, "a whiteout", nil
		}
		if k == len(comps)-1 {
			return fd, "", nil
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Close(fd)
			return -1, "", fmt.Errorf("%w: %.200q is a symlink or not a directory", errdefs.ErrInvalidArgument, strings.Join(comps[:k+1], "/"))
		}
		next, err := unix.Openat(fd, comp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, "", err
		}
		fd = next
		var v [1]byte
		if n, err := unix.Fgetxattr(fd, "trusted.overlay.opaque", v[:]); err == nil && n == 1 && v[0] == 'y' {
			stop = "an opaque directory"
		}
	}
	unix.Close(fd)
	return -1, stop, nil // comps is empty: not reached
}

func splitRel(rel string) (dir, base string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

func joinRel(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}
