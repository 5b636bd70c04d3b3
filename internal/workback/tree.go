package workback

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/agentkernel/agentkernel/internal/safetar"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Git tree entry modes.
const (
	modeFile    = "100644"
	modeExec    = "100755"
	modeLink    = "120000"
	modeGitlink = "160000"
)

// maxLinkTarget bounds a symlink target.
const maxLinkTarget = 4096

// node is one path of a tree read from a tar stream.
type node struct {
	dir  bool
	mode string // modeFile, modeExec or modeLink unless dir
	blob string // the staged file holding the content (a link's target)
}

// tree is a tar stream's content: paths (clean, slash-separated, relative)
// to nodes whose contents are staged under numbered names in one private
// directory. Nothing is ever written to a path the stream names.
type tree struct {
	nodes  map[string]*node
	notes  *notes
	stage  string // where contents are staged
	seq    int
	budget budget
	root   string          // the leading directory stripped from names
	gitDir map[string]bool // .git paths already noted
}

// readTree reads a tar stream that nobody vouches for into a tree, staging
// contents under stage (an existing private directory). root, if not "",
// is a leading directory that every name must be under (safetar.Write
// names a tar of /workspace "workspace/..."); it is stripped.
//
// Names are checked by safetar.CleanName (no absolute names, no ".."). An
// entry below a symlink or a file, a directory in the way of a file, a
// device node, an unknown entry type, a hard link to anything but an
// earlier regular file of the stream, or a limit exceeded is an error. A
// regular file's size is checked against the limits before a byte of it
// is read. Skipped with a note: anything at or below a .git component,
// FIFOs. A hard link becomes a copy of its target; only the executable
// bit of a mode counts.
func readTree(ctx context.Context, r io.Reader, root string, lim Limits, stage string, n *notes) (*tree, error) {
	root, err := safetar.CleanName(strings.TrimPrefix(root, "/"))
	if err != nil {
		return nil, fmt.Errorf("tree root: %w", err)
	}
	t := &tree{
		nodes:  map[string]*node{},
		notes:  n,
		stage:  stage,
		budget: budget{lim: lim.withDefaults()},
		root:   root,
		gitDir: map[string]bool{},
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return t, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: not a valid tar stream: %v", errdefs.ErrInvalidArgument, err)
		}
		if err := t.budget.entry(); err != nil {
			return nil, err
		}
		if err := t.entry(ctx, hdr, tr); err != nil {
			return nil, fmt.Errorf("entry %.200q: %w", hdr.Name, err)
		}
	}
}

// name cleans an entry name and strips the root.
func (t *tree) name(raw string) (string, error) {
	rel, err := safetar.CleanName(raw)
	if err != nil || t.root == "" {
		return rel, err
	}
	switch {
	case rel == t.root:
		return "", nil
	case strings.HasPrefix(rel, t.root+"/"):
		return rel[len(t.root)+1:], nil
	}
	return "", fmt.Errorf("%w: outside %q", errdefs.ErrInvalidArgument, t.root)
}

func (t *tree) entry(ctx context.Context, hdr *tar.Header, r io.Reader) error {
	if err := t.budget.name(len(hdr.Name) + len(hdr.Linkname)); err != nil {
		return err
	}
	rel, err := t.name(hdr.Name)
	if err != nil {
		return err
	}
	regular := false
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont:
		regular = true
		// Refuse an oversized file before reading it, even if ignored.
		if err := t.budget.file(rel, hdr.Size); err != nil {
			return err
		}
	case tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
	case tar.TypeChar, tar.TypeBlock:
		return fmt.Errorf("%w: a device node has no place in a workspace", errdefs.ErrInvalidArgument)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("%w: unsupported entry type %q", errdefs.ErrInvalidArgument, hdr.Typeflag)
	}
	if rel == "" {
		if hdr.Typeflag == tar.TypeDir {
			return nil // the workspace itself
		}
		return fmt.Errorf("%w: a non-directory names the workspace itself", errdefs.ErrInvalidArgument)
	}
	if g, ok := gitComponent(rel); ok {
		if !t.gitDir[g] {
			t.gitDir[g] = true
			t.notes.add("ignored %q: a .git is never collected", g)
		}
		return nil
	}
	switch {
	case regular:
		mode := modeFile
		if hdr.Mode&0o100 != 0 {
			mode = modeExec
		}
		blob, err := t.stageFrom(ctx, r, hdr.Size)
		if err != nil {
			return err
		}
		return t.put(rel, &node{mode: mode, blob: blob})
	case hdr.Typeflag == tar.TypeDir:
		return t.put(rel, &node{dir: true})
	case hdr.Typeflag == tar.TypeSymlink:
		if hdr.Linkname == "" || len(hdr.Linkname) > maxLinkTarget || strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return fmt.Errorf("%w: bad symlink target %.60q", errdefs.ErrInvalidArgument, hdr.Linkname)
		}
		blob, err := t.stageFrom(ctx, strings.NewReader(hdr.Linkname), int64(len(hdr.Linkname)))
		if err != nil {
			return err
		}
		return t.put(rel, &node{mode: modeLink, blob: blob})
	case hdr.Typeflag == tar.TypeLink:
		return t.hardlink(rel, hdr.Linkname)
	default: // FIFO
		t.notes.add("skipped %q: a FIFO cannot be collected", rel)
		return nil
	}
}

// hardlink makes rel a copy of an earlier regular file of the stream.
func (t *tree) hardlink(rel, linkname string) error {
	target, err := t.name(linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	n, ok := t.nodes[target]
	if !ok || n.dir || n.mode == modeLink {
		return fmt.Errorf("%w: hard link to %.200q, which is not an earlier regular file of the archive", errdefs.ErrInvalidArgument, linkname)
	}
	t.notes.add("%q is a hard link to %q: collected as a copy", rel, target)
	return t.put(rel, &node{mode: n.mode, blob: n.blob})
}

// put adds a node at rel, creating missing parent directories. A parent
// that is a file or a symlink, or a directory where a file goes, is an
// error: the stream would have written through a symlink or over a tree.
func (t *tree) put(rel string, n *node) error {
	for i := 0; i < len(rel); i++ {
		if rel[i] != '/' {
			continue
		}
		dir := rel[:i]
		p, ok := t.nodes[dir]
		if !ok {
			if err := t.budget.name(len(dir)); err != nil {
				return err
			}
			t.nodes[dir] = &node{dir: true}
			continue
		}
		if !p.dir {
			what := "a file"
			if p.mode == modeLink {
				what = "a symlink"
			}
			return fmt.Errorf("%w: %.200q is %s, not a directory: nothing may be written through it", errdefs.ErrInvalidArgument, dir, what)
		}
	}
	if old, ok := t.nodes[rel]; ok && old.dir {
		if n.dir {
			return nil
		}
		return fmt.Errorf("%w: a directory is in the way", errdefs.ErrInvalidArgument)
	}
	t.nodes[rel] = n
	return nil
}

// stageFrom copies exactly size bytes of r to a new staged file.
func (t *tree) stageFrom(ctx context.Context, r io.Reader, size int64) (string, error) {
	t.seq++
	name := filepath.Join(t.stage, strconv.Itoa(t.seq))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	cr := &readErrReader{ctx: ctx, r: io.LimitReader(r, size)}
	n, err := io.Copy(f, cr)
	if cr.err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: reading the archive: %v", errdefs.ErrInvalidArgument, cr.err)
	}
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("%w: the archive ends inside the entry (%d of %d bytes)", errdefs.ErrInvalidArgument, n, size)
	}
	return name, f.Close()
}

// files returns the paths of the tree's non-directories, sorted.
func (t *tree) files() []string {
	var out []string
	for p, n := range t.nodes {
		if !n.dir {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// readErrReader stops at ctx's end and remembers a read error, so that a
// copy's caller can tell the archive's failures from the disk's.
type readErrReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (c *readErrReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}

// notes collects remarks on a collection, a bounded number of them.
type notes struct {
	list []string
	more int
}

// maxNotes bounds the notes kept.
const maxNotes = 50

func (n *notes) add(format string, args ...any) {
	if len(n.list) >= maxNotes {
		n.more++
		return
	}
	n.list = append(n.list, fmt.Sprintf(format, args...))
}

func (n *notes) all() []string {
	out := append([]string(nil), n.list...)
	if n.more > 0 {
		out = append(out, fmt.Sprintf("... and %d more notes", n.more))
	}
	return out
}
