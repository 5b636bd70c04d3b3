package build

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Bounds on what one COPY or ADD takes from the build context.
const (
	maxCopyBytes   = 8 << 30
	maxCopyEntries = 200_000
)

// copyPlan is what a COPY or ADD puts where: a tar stream (in a file)
// to extract in Dir, and the hash of its content without times, which is
// part of the step's cache key.
type copyPlan struct {
	Dir  string // absolute directory in the image
	Tar  string // host path of the tar file
	Hash string
}

// planCopy resolves srcs (context-relative, with * ? [ globs) and dest
// (absolute, or relative to workdir) as COPY does: several sources, a
// directory source or a dest ending in "/" make dest a directory, and a
// directory source is copied by its content. Files get owner uid:gid and,
// if mode >= 0, that mode. Nothing outside contextDir is read: names
// with "..", and symlinks, are never followed out of it (a symlink is
// copied as a symlink).
func planCopy(contextDir string, srcs []string, dest, workdir string, uid, gid int, mode int64, tarPath string) (copyPlan, error) {
	root, err := os.OpenRoot(contextDir)
	if err != nil {
		return copyPlan{}, fmt.Errorf("%w: build context %s: %v", errdefs.ErrNotFound, contextDir, err)
	}
	defer root.Close()
	dirDest := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		dest = path.Join("/", workdir, dest)
	}
	var matches []string
	for _, s := range srcs {
		if strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
			return copyPlan{}, fmt.Errorf("%w: ADD of a URL (%s) is not supported: only files of the build context", errdefs.ErrNotImplemented, s)
		}
		clean := path.Clean("/" + s)[1:]
		if clean == "" {
			clean = "."
		}
		if strings.ContainsAny(clean, "*?[") {
			m, err := fs.Glob(root.FS(), clean)
			if err != nil || len(m) == 0 {
				return copyPlan{}, fmt.Errorf("%w: COPY source %q matches no file of the build context", errdefs.ErrNotFound, s)
			}
			matches = append(matches, m...)
			continue
		}
		if _, err := root.Lstat(clean); err != nil {
			return copyPlan{}, fmt.Errorf("%w: COPY source %q is not in the build context", errdefs.ErrNotFound, s)
		}
		matches = append(matches, clean)
	}
	toDir := len(matches) > 1 || dirDest
	if len(matches) == 1 {
		if fi, err := root.Lstat(matches[0]); err == nil && fi.IsDir() {
			toDir = true
		}
	}
	plan := copyPlan{Dir: path.Clean(dest), Tar: tarPath}
	f, err := os.OpenFile(tarPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return copyPlan{}, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	c := &copier{root: root, tw: tar.NewWriter(bw), h: sha256.New(), uid: uid, gid: gid, mode: mode}
	for _, m := range matches {
		fi, err := root.Lstat(m)
		if err != nil {
			return copyPlan{}, err
		}
		switch {
		case fi.IsDir():
			err = fs.WalkDir(root.FS(), m, func(p string, d fs.DirEntry, err error) error {
				if err != nil || p == m {
					return err
				}
				rel := strings.TrimPrefix(p, m+"/")
				if m == "." {
					rel = p
				}
				return c.add(p, rel)
			})
		case toDir:
			err = c.add(m, path.Base(m))
		default:
			plan.Dir = path.Dir(plan.Dir)
			err = c.add(m, path.Base(path.Clean(dest)))
		}
		if err != nil {
			return copyPlan{}, err
		}
	}
	if err := c.tw.Close(); err != nil {
		return copyPlan{}, err
	}
	if err := bw.Flush(); err != nil {
		return copyPlan{}, err
	}
	plan.Hash = hex.EncodeToString(c.h.Sum(nil))
	return plan, f.Close()
}

// copier writes context files to a tar stream and hashes what matters
// for the cache (names, types, modes, owners, link targets, content).
type copier struct {
	root    *os.Root
	tw      *tar.Writer
	h       hash.Hash
	uid     int
	gid     int
	mode    int64
	bytes   int64
	entries int
}

func (c *copier) add(p, name string) error {
	if c.entries++; c.entries > maxCopyEntries {
		return fmt.Errorf("%w: COPY of more than %d files", errdefs.ErrTooLarge, maxCopyEntries)
	}
	fi, err := c.root.Lstat(p)
	if err != nil {
		return err
	}
	h := &tar.Header{Name: name, Uid: c.uid, Gid: c.gid, ModTime: fi.ModTime(), Mode: int64(fi.Mode().Perm()), Format: tar.FormatPAX}
	if c.mode >= 0 {
		h.Mode = c.mode
	}
	switch {
	case fi.IsDir():
		h.Typeflag, h.Name = tar.TypeDir, name+"/"
	case fi.Mode()&fs.ModeSymlink != 0:
		h.Typeflag = tar.TypeSymlink
		if h.Linkname, err = c.root.Readlink(p); err != nil {
			return err
		}
	case fi.Mode().IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
	default:
		return nil // devices, sockets, pipes: not copied
	}
	fmt.Fprintf(c.h, "%c %q %o %d %d %q %d\n", h.Typeflag, h.Name, h.Mode, h.Uid, h.Gid, h.Linkname, h.Size)
	if err := c.tw.WriteHeader(h); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeReg {
		return nil
	}
	if c.bytes += h.Size; c.bytes > maxCopyBytes {
		return fmt.Errorf("%w: COPY of more than %d bytes", errdefs.ErrTooLarge, int64(maxCopyBytes))
	}
	f, err := c.root.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(io.MultiWriter(c.tw, c.h), io.LimitReader(f, h.Size)); err != nil {
		return fmt.Errorf("copying %s: %w", p, err)
	}
	return nil
}

// isArchive says whether the context file src starts like a tar, gzip,
// bzip2 or xz archive (which ADD would extract).
func isArchive(contextDir, src string) bool {
	root, err := os.OpenRoot(contextDir)
	if err != nil {
		return false
	}
	defer root.Close()
	f, err := root.Open(path.Clean("/" + src)[1:])
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 512)
	n, _ := io.ReadFull(f, b)
	b = b[:n]
	switch {
	case len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b,
		len(b) >= 3 && string(b[:3]) == "BZh",
		len(b) >= 6 && string(b[:6]) == "\xfd7zXZ\x00",
		len(b) >= 262 && string(b[257:262]) == "ustar":
		return true
	}
	return false
}

// parseChown reads --chown=UID[:GID] (numeric ids only: the image's
// /etc/passwd is not consulted).
func parseChown(v string) (int, int, error) {
	if v == "" {
		return 0, 0, nil
	}
	u, g, hasG := strings.Cut(v, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil || uid >= 65536 {
		return 0, 0, fmt.Errorf("%w: --chown=%s: only numeric ids below 65536 are supported", errdefs.ErrNotImplemented, v)
	}
	gid := uid
	if hasG {
		if gid, err = strconv.ParseUint(g, 10, 32); err != nil || gid >= 65536 {
			return 0, 0, fmt.Errorf("%w: --chown=%s: only numeric ids below 65536 are supported", errdefs.ErrNotImplemented, v)
		}
	}
	return int(uid), int(gid), nil
}
