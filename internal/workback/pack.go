package workback

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/safetar"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// PackOptions tune Pack. The zero value is usable.
type PackOptions struct {
	Limits
	// UID and GID own every entry: 0 (root) unless set, as `docker cp`
	// does. Set them to the sandbox user's to let it edit the files.
	UID, GID int
}

// Pack writes to w the tar stream that becomes the sandbox's /workspace.
//
// For a git source it holds the directory's tracked files and its
// untracked files that are not ignored (by .gitignore, .git/info/exclude
// or the user's core.excludesFile), as they are in the working tree, so
// uncommitted edits go in; tracked files deleted from the working tree do
// not. Nothing of any .git directory or file goes in, nor nested
// repositories; a submodule is an empty directory. A sparse checkout is
// refused, since the files it leaves out would look deleted afterwards.
//
// For a plain directory it holds every regular file, directory and
// symlink below it except any .git; FIFOs, sockets and devices are left
// out. If src.Baseline is set, Pack also keeps a copy of the stream there.
//
// Names are relative ("a/b", directories "a/"), never absolute or with
// "..". Symlinks are stored as links and never followed, nor is any file
// reached through one. Only permission bits are kept (no setuid). Too many
// entries or bytes (opts.Limits) is an error wrapping errdefs.ErrTooLarge;
// what was written to w by then is a truncated stream.
func Pack(ctx context.Context, src Source, w io.Writer, opts PackOptions) error {
	if src.Dir == "" {
		return fmt.Errorf("pack: %w: the source has no directory", errdefs.ErrInvalidArgument)
	}
	var baseline *os.File
	if !src.Git && src.Baseline != "" {
		f, err := os.CreateTemp(filepath.Dir(src.Baseline), ".workback-baseline-*")
		if err != nil {
			return fmt.Errorf("pack %s: baseline: %w", src.Dir, err)
		}
		baseline = f
		defer func() {
			baseline.Close()
			os.Remove(baseline.Name()) // gone already after the rename
		}()
		w = io.MultiWriter(w, baseline)
	}
	p := &packer{
		tw:     tar.NewWriter(w),
		root:   src.Dir,
		budget: budget{lim: opts.Limits.withDefaults()},
		uid:    opts.UID,
		gid:    opts.GID,
		dirs:   map[string]bool{},
	}
	var err error
	if src.Git {
		err = p.packGit(ctx)
	} else {
		err = p.packDir(ctx)
	}
	if err == nil {
		err = p.tw.Close()
	}
	if err == nil && baseline != nil {
		if err = baseline.Close(); err == nil {
			err = os.Rename(baseline.Name(), src.Baseline)
		}
	}
	if err != nil {
		return fmt.Errorf("pack %s: %w", src.Dir, err)
	}
	return nil
}

// packer writes one Pack stream.
type packer struct {
	tw       *tar.Writer
	root     string
	budget   budget
	uid, gid int
	dirs     map[string]bool // directories written, or found not to be real ones (false)
}

// packGit packs what git lists: tracked files (with their stage, to see
// submodules and sparse entries) and untracked files that are not ignored.
func (p *packer) packGit(ctx context.Context) error {
	var cfg []string
	if x := userExcludesFile(ctx, p.root); x != "" {
		cfg = []string{"-c", "core.excludesFile=" + x}
	}
	cached, err := gitRun{dir: p.root, args: append(cfg, "ls-files", "-z", "--cached", "--stage", "-t")}.run(ctx)
	if err != nil {
		return err
	}
	others, err := gitRun{dir: p.root, args: append(cfg, "ls-files", "-z", "--others", "--exclude-standard")}.run(ctx)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var paths, submodules []string
	for _, rec := range splitNUL(cached) {
		// "TAG MODE OID STAGE\tPATH"
		meta, name, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 4 {
			return fmt.Errorf("git ls-files: unexpected record %.200q", rec)
		}
		switch {
		case f[0] == "S":
			return fmt.Errorf("%w: %.200q is left out of the working tree (a sparse checkout or skip-worktree): agentkernel copies full checkouts only", errdefs.ErrFailedPrecondition, name)
		case f[1] == modeGitlink:
			submodules = append(submodules, name)
		case !seen[name]:
			seen[name] = true
			paths = append(paths, name)
		}
	}
	for _, name := range splitNUL(others) {
		if !strings.HasSuffix(name, "/") && !seen[name] { // "dir/": a nested repository
			seen[name] = true
			paths = append(paths, name)
		}
	}
	sort.Strings(paths)
	for _, name := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.listed(name); err != nil {
			return err
		}
	}
	for _, name := range submodules {
		if ok, err := p.parentsReal(name); err != nil || !ok {
			return err
		}
		if err := p.dir(name, nil); err != nil {
			return err
		}
	}
	return nil
}

// listed packs one path git listed, if it is still a regular file or a
// symlink reached without going through a symlink.
func (p *packer) listed(name string) error {
	if clean, err := safetar.CleanName(name); err != nil || clean != name || name == "" || hasGitComponent(name) {
		return nil // nothing git lists legitimately
	}
	ok, err := p.parentsReal(name)
	if err != nil || !ok {
		return err
	}
	fi, err := os.Lstat(filepath.Join(p.root, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // deleted in the working tree
	}
	if err != nil {
		return err
	}
	return p.entry(name, fi)
}

// parentsReal writes name's parent directories, reporting false if one
// of them is not a real directory (a symlink, say) in the working tree.
func (p *packer) parentsReal(name string) (bool, error) {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		dir := name[:i]
		if ok, known := p.dirs[dir]; known {
			if !ok {
				return false, nil
			}
			continue
		}
		fi, err := os.Lstat(filepath.Join(p.root, filepath.FromSlash(dir)))
		if err != nil || !fi.IsDir() {
			p.dirs[dir] = false
			return false, nil
		}
		if err := p.dir(dir, fi); err != nil {
			return false, err
		}
	}
	return true, nil
}

// packDir packs every directory, regular file and symlink below root,
// except any .git.
func (p *packer) packDir(ctx context.Context) error {
	return filepath.WalkDir(p.root, func(full string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if full == p.root {
			return nil
		}
		if isGitName(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(p.root, full)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return p.entry(filepath.ToSlash(rel), fi)
	})
}

// entry packs a directory, regular file or symlink; anything else is
// left out.
func (p *packer) entry(name string, fi fs.FileInfo) error {
	full := filepath.Join(p.root, filepath.FromSlash(name))
	switch m := fi.Mode(); {
	case m.IsDir():
		return p.dir(name, fi)
	case m.IsRegular():
		return p.file(name, full)
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(full)
		if err != nil {
			return err
		}
		if err := p.count(name, len(target)); err != nil {
			return err
		}
		hdr := p.header(name, fi)
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		return p.tw.WriteHeader(hdr)
	}
	return nil
}

// dir writes a directory entry once; fi nil means mode 0755.
func (p *packer) dir(name string, fi fs.FileInfo) error {
	if p.dirs[name] {
		return nil
	}
	p.dirs[name] = true
	if err := p.count(name, 0); err != nil {
		return err
	}
	hdr := &tar.Header{Name: name + "/", Mode: 0o755, Uid: p.uid, Gid: p.gid}
	if fi != nil {
		hdr = p.header(name+"/", fi)
	}
	hdr.Typeflag = tar.TypeDir
	return p.tw.WriteHeader(hdr)
}

// file writes a regular file, opened without following a symlink and
// without blocking on a FIFO put in its place. A file that changes while
// it is read keeps the size it had when opened (cut, or padded with zeros).
func (p *packer) file(name, full string) error {
	fd, err := unix.Open(full, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: full, Err: err}
	}
	f := os.NewFile(uintptr(fd), full)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil // replaced since it was listed
	}
	if err := p.count(name, 0); err != nil {
		return err
	}
	if err := p.budget.file(name, fi.Size()); err != nil {
		return fmt.Errorf("%w (raise the limit, or list large files in .gitignore)", err)
	}
	hdr := p.header(name, fi)
	hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
	if err := p.tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(p.tw, io.LimitReader(f, hdr.Size))
	if err != nil {
		return err
	}
	if n < hdr.Size {
		_, err = io.CopyN(p.tw, zeros{}, hdr.Size-n)
	}
	return err
}

func (p *packer) count(name string, extra int) error {
	if err := p.budget.entry(); err != nil {
		return err
	}
	return p.budget.name(len(name) + extra)
}

func (p *packer) header(name string, fi fs.FileInfo) *tar.Header {
	return &tar.Header{Name: name, Mode: int64(fi.Mode().Perm()), Uid: p.uid, Gid: p.gid, ModTime: fi.ModTime()}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// isGitName reports whether a path component names a git directory, also
// as Windows and macOS would see it (".GIT", ".git.", "git~1"), so that
// nothing can reach the repository's own .git after a checkout there.
func isGitName(c string) bool {
	c = strings.TrimRight(c, ". ")
	return strings.EqualFold(c, ".git") || strings.EqualFold(c, "git~1")
}

// hasGitComponent reports whether a slash-separated path has a component
// that isGitName.
func hasGitComponent(name string) bool {
	_, ok := gitComponent(name)
	return ok
}

// gitComponent returns the prefix of name up to and including its first
// .git component.
func gitComponent(name string) (string, bool) {
	for i, c := range strings.Split(name, "/") {
		if isGitName(c) {
			parts := strings.SplitN(name, "/", i+2)
			return path.Join(parts[:i+1]...), true
		}
	}
	return "", false
}
