package unpack

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/internal/safetar"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// IDShift maps the owners of a layer's files into the host range that
// sandboxes' user namespaces map to: owner u becomes UID+u (GID+g). Owners
// at or above Size cannot be represented and make the layer fail.
type IDShift struct {
	UID  uint32
	GID  uint32
	Size uint32
}

// Options configure Layer. Shift is required; zero limits take safetar's
// defaults (16 GiB of files, 1,000,000 entries).
type Options struct {
	Shift      IDShift
	MaxBytes   int64
	MaxEntries int
}

// Stats describe one unpacked layer.
type Stats struct {
	Bytes          int64 // bytes of regular files
	Entries        int   // archive entries read
	Whiteouts      int   // overlay whiteouts made
	OpaqueDirs     int   // directories marked opaque
	SkippedDevices int   // device nodes left out
	DroppedXattrs  int   // extended attributes not kept
	// Links are the hard links whose target is not in this layer but,
	// if anywhere, in a lower one; they are left out of the directory
	// (see LowerLink). Sorted by Path.
	Links []LowerLink
}

// LowerLink is a hard link entry of a layer whose target the layer does not
// hold (image-spec allows a link to a file of a lower layer). The layer's
// directory is unpacked from its own content only, so that one directory
// serves every image that has the layer whatever lies below it; the link
// is left out and recorded here, and the image store materialises it in a
// layer of its own above this one, for one stack of lower layers (see
// internal/image's links.go). The filter has already checked that no
// whiteout, opaque directory or non-directory parent of this layer that came
// before the entry hides Target.
type LowerLink struct {
	Path   string `json:"path"`   // the link, a safetar.CleanName result
	Target string `json:"target"` // what it names in the lower layers, also clean
}

// Whiteout names (OCI image spec, "Representing Changes").
const (
	whPrefix = ".wh."
	whMeta   = ".wh..wh."
	whOpaque = ".wh..wh..opq"
)

// Bounds on extended attributes carried by one layer.
const (
	maxXattrsPerEntry = 64
	maxXattrValue     = 64 << 10
	maxXattrTotal     = 16 << 20
	// maxTrailer bounds what may follow the end-of-archive marker (tar
	// writers pad to a record of 10 KiB; anything much longer is not a
	// tar's padding).
	maxTrailer = 1 << 20
)

// Layer unpacks the layer tar stream r into dir, which must exist and be
// empty, as an overlayfs lower layer (see the package doc). It reads r to
// its end, so that a caller hashing r sees every byte. On error dir holds
// a partial layer that the caller must delete.
func Layer(ctx context.Context, r io.Reader, dir string, opts Options) (Stats, error) {
	if opts.Shift.Size == 0 {
		return Stats{}, fmt.Errorf("%w: unpack: id shift of size 0", errdefs.ErrInvalidArgument)
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = safetar.DefaultMaxBytes
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = safetar.DefaultMaxEntries
	}
	f := newFilter(opts)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := safetar.Extract(ctx, dir, pr, safetar.Options{
			MaxBytes: opts.MaxBytes, MaxEntries: opts.MaxEntries, SameOwner: true})
		// Unblock the filter whatever happened.
		pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		done <- err
	}()
	ferr := f.run(ctx, r, pw)
	pw.CloseWithError(ferr)
	xerr := <-done
	var pe errPipe
	switch {
	case ferr != nil && !errors.As(ferr, &pe):
		return f.stats, ferr
	case xerr != nil:
		return f.stats, xerr
	case ferr != nil:
		return f.stats, ferr
	}
	if err := drainTrailer(r); err != nil {
		return f.stats, err
	}
	if err := f.apply(dir); err != nil {
		return f.stats, err
	}
	return f.stats, nil
}

// drainTrailer reads what follows the end-of-archive marker.
func drainTrailer(r io.Reader) error {
	n, err := io.Copy(io.Discard, io.LimitReader(r, maxTrailer+1))
	if err != nil {
		return fmt.Errorf("%w: reading the layer: %v", errdefs.ErrInvalidArgument, err)
	}
	if n > maxTrailer {
		return fmt.Errorf("%w: more than %d bytes follow the end of the layer's archive", errdefs.ErrInvalidArgument, maxTrailer)
	}
	return nil
}

// errPipe marks a failure to hand data to the extractor, whose own error
// then says what went wrong.
type errPipe struct{ err error }

func (e errPipe) Error() string { return e.err.Error() }

type xattr struct {
	name  string
	value []byte
}

// filter rewrites the layer stream for safetar.Extract and remembers what
// the extractor cannot do (whiteouts, opaque markers, xattrs, implicit
// parents). One goroutine runs it; apply runs after the extraction.
type filter struct {
	opts  Options
	stats Stats

	whiteouts  []string
	opaque     []string
	xattrs     map[string][]xattr
	xattrBytes int
	// listed maps each directory the archive lists to its times.
	listed map[string][2]time.Time
	// parents holds every ancestor directory of an entry.
	parents map[string]bool
	// rootUID, rootGID and rootMode are those of the archive's "./"
	// entry, shifted, or the mapped root and 0755.
	rootUID, rootGID int
	rootMode         uint32

	// seen holds every non-directory the layer has put in its directory
	// so far (a hard link's target is looked for here first); pending the
	// hard links to lower layers, by path. whSeen and opqSeen index
	// whiteouts and opaque dirs seen so far, to refuse a link to a target
	// the layer deleted before the link.
	seen    map[string]bool
	pending map[string]string
	whSeen  map[string]bool
	opqSeen map[string]bool
}

func newFilter(opts Options) *filter {
	return &filter{
		opts: opts, xattrs: map[string][]xattr{}, listed: map[string][2]time.Time{}, parents: map[string]bool{},
		rootUID: int(opts.Shift.UID), rootGID: int(opts.Shift.GID), rootMode: 0o755,
		seen: map[string]bool{}, pending: map[string]string{}, whSeen: map[string]bool{}, opqSeen: map[string]bool{},
	}
}

// run copies the archive r to w entry by entry, rewriting headers.
func (f *filter) run(ctx context.Context, r io.Reader, w io.Writer) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: reading the layer's archive: %v", errdefs.ErrInvalidArgument, err)
		}
		if f.stats.Entries++; f.stats.Entries > f.opts.MaxEntries {
			return fmt.Errorf("%w: the layer has more than %d entries", errdefs.ErrTooLarge, f.opts.MaxEntries)
		}
		keep, err := f.rewrite(h)
		if err != nil {
			return fmt.Errorf("layer entry %.200q: %w", h.Name, err)
		}
		if !keep {
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return errPipe{err}
		}
		if h.Typeflag == tar.TypeReg {
			if f.stats.Bytes += h.Size; f.stats.Bytes > f.opts.MaxBytes {
				return fmt.Errorf("%w: the layer holds more than %d bytes of files", errdefs.ErrTooLarge, f.opts.MaxBytes)
			}
			if _, err := io.Copy(tw, tr); err != nil {
				var pe errPipe
				if errors.Is(err, io.ErrClosedPipe) || errors.As(err, &pe) {
					return errPipe{err}
				}
				return fmt.Errorf("%w: layer entry %.200q: %v", errdefs.ErrInvalidArgument, h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return errPipe{err}
	}
	for _, p := range sortedKeys(f.pending) {
		if f.underFile(p) {
			continue // a later non-directory entry replaced a parent
		}
		f.stats.Links = append(f.stats.Links, LowerLink{Path: p, Target: f.pending[p]})
	}
	return nil
}

// rewrite checks and rewrites one header in place; false drops the entry
// from the stream (whiteouts are remembered for apply).
func (f *filter) rewrite(h *tar.Header) (bool, error) {
	switch h.Typeflag {
	case tar.TypeXGlobalHeader:
		return false, nil
	case tar.TypeChar:
		if h.Devmajor == 0 && h.Devminor == 0 {
			// Already an overlay whiteout (layers diffed straight from
			// an overlay upper directory): keep its meaning.
			rel, err := safetar.CleanName(h.Name)
			if err != nil || rel == "" {
				return false, fmt.Errorf("%w: bad whiteout device name", errdefs.ErrInvalidArgument)
			}
			f.whiteouts = append(f.whiteouts, rel)
			f.whSeen[rel] = true
			return false, nil
		}
		f.stats.SkippedDevices++
		return false, nil
	case tar.TypeBlock:
		f.stats.SkippedDevices++
		return false, nil
	case tar.TypeGNUSparse, tar.TypeRegA:
		h.Typeflag = tar.TypeReg // the reader has expanded sparse files
	}
	rel, err := safetar.CleanName(h.Name)
	if err != nil {
		return false, err
	}
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if strings.HasPrefix(base, whPrefix) {
		switch {
		case base == whOpaque:
			f.opaque = append(f.opaque, dir)
			f.opqSeen[dir] = true
		case strings.HasPrefix(base, whMeta):
			// aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): no meaning here.
		default:
			target := base[len(whPrefix):]
			if target == "." || target == ".." {
				return false, fmt.Errorf("%w: whiteout of %q", errdefs.ErrInvalidArgument, target)
			}
			f.whiteouts = append(f.whiteouts, path.Join(dir, target))
			f.whSeen[path.Join(dir, target)] = true
		}
		return false, nil
	}
	if h.Typeflag == tar.TypeLink && rel != "" {
		lower, err := f.hardlink(rel, h.Linkname)
		if err != nil || lower {
			return false, err
		}
	}
	f.track(rel, h.Typeflag)
	if h.Uid < 0 || h.Gid < 0 || int64(h.Uid) >= int64(f.opts.Shift.Size) || int64(h.Gid) >= int64(f.opts.Shift.Size) {
		return false, fmt.Errorf("%w: owned by %d:%d, outside the mapped id range 0-%d",
			errdefs.ErrInvalidArgument, h.Uid, h.Gid, int64(f.opts.Shift.Size)-1)
	}
	h.Uid += int(f.opts.Shift.UID)
	h.Gid += int(f.opts.Shift.GID)
	if err := f.liftXattrs(rel, h); err != nil {
		return false, err
	}
	h.Uname, h.Gname = "", ""
	h.PAXRecords, h.Xattrs = nil, nil //nolint:staticcheck // Xattrs: clear the deprecated field too
	h.Format = tar.FormatUnknown
	if rel == "" {
		if h.Typeflag == tar.TypeDir {
			f.rootUID, f.rootGID, f.rootMode = h.Uid, h.Gid, uint32(h.Mode)&0o7777
		}
		return h.Typeflag != tar.TypeDir, nil // a non-directory root: safetar refuses it
	}
	if h.Typeflag == tar.TypeDir {
		at := h.AccessTime
		if at.IsZero() {
			at = h.ModTime
		}
		f.listed[rel] = [2]time.Time{at, h.ModTime}
	}
	for d := dir; d != "" && !f.parents[d]; d = path.Dir(d) {
		f.parents[d] = true
		if !strings.Contains(d, "/") {
			break
		}
	}
	return true, nil
}

// hardlink decides where the target of the hard link entry rel lives:
// in this layer (false: safetar makes the link) or in a lower one (true:
// the link is recorded in f.pending and left out of the stream). A target
// this layer deleted, hid or put under a non-directory before the entry is
// an error, as it would be when applying the layer onto its lowers.
func (f *filter) hardlink(rel, linkname string) (bool, error) {
	target, err := safetar.CleanName(linkname)
	if err != nil {
		return false, fmt.Errorf("hard link target: %w", err)
	}
	if target == "" || f.seen[target] || target == rel {
		return false, nil // in this layer (or safetar refuses it)
	}
	if _, ok := f.listed[target]; ok {
		return false, nil // a directory: safetar refuses it
	}
	if f.underFile(rel) {
		return false, nil // safetar refuses it
	}
	if lower, ok := f.pending[target]; ok {
		f.pending[rel] = lower // a link to a link to a lower file
		f.forget(rel)
		return true, nil
	}
	if f.whSeen[target] {
		return false, fmt.Errorf("%w: hard link target %.200q was deleted by a whiteout earlier in this layer", errdefs.ErrNotFound, target)
	}
	for d := parentOf(target); d != ""; d = parentOf(d) {
		if f.seen[d] {
			return false, fmt.Errorf("%w: hard link target %.200q: its parent %.200q is not a directory", errdefs.ErrInvalidArgument, target, d)
		}
		if f.whSeen[d] || f.opqSeen[d] {
			return false, fmt.Errorf("%w: hard link target %.200q was deleted by a whiteout earlier in this layer", errdefs.ErrNotFound, target)
		}
	}
	if f.opqSeen[""] {
		return false, fmt.Errorf("%w: hard link target %.200q: the layer's root is opaque", errdefs.ErrNotFound, target)
	}
	if len(f.pending) >= f.opts.MaxEntries {
		return false, fmt.Errorf("%w: too many hard links to lower layers", errdefs.ErrTooLarge)
	}
	f.pending[rel] = target
	f.forget(rel)
	return true, nil
}

// forget drops rel from seen: a pending link replaced it.
func (f *filter) forget(rel string) { delete(f.seen, rel) }

// track records that the entry rel of type typ is in the layer's
// directory: it replaces a pending link at rel.
func (f *filter) track(rel string, typ byte) {
	if rel == "" {
		return
	}
	delete(f.pending, rel)
	if typ == tar.TypeDir {
		delete(f.seen, rel)
		return
	}
	f.seen[rel] = true
}

// underFile reports whether an ancestor of rel is a non-directory of this
// layer.
func (f *filter) underFile(rel string) bool {
	for d := parentOf(rel); d != ""; d = parentOf(d) {
		if f.seen[d] {
			return true
		}
	}
	return false
}

// liftXattrs moves the entry's kept extended attributes into f.xattrs.
func (f *filter) liftXattrs(rel string, h *tar.Header) error {
	var kept []xattr
	for k, v := range h.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		value, keep := keepXattr(name, []byte(v), f.opts.Shift)
		if !keep {
			f.stats.DroppedXattrs++
			continue
		}
		if len(kept) >= maxXattrsPerEntry || len(value) > maxXattrValue {
			return fmt.Errorf("%w: too many or too large extended attributes", errdefs.ErrTooLarge)
		}
		if f.xattrBytes += len(name) + len(value); f.xattrBytes > maxXattrTotal {
			return fmt.Errorf("%w: the layer carries more than %d bytes of extended attributes", errdefs.ErrTooLarge, maxXattrTotal)
		}
		kept = append(kept, xattr{name, value})
	}
	if len(kept) > 0 {
		f.xattrs[rel] = append(f.xattrs[rel], kept...)
	}
	return nil
}
