package cli

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// writeTar writes the host file or directory src to w as a tar stream whose
// entries are named under root ("" puts a directory's children at the
// top). Symbolic links are written as links, never followed; sockets,
// devices and FIFOs are skipped and reported on warn. Entries are owned by
// root, as `docker cp` does.
func writeTar(ctx context.Context, w io.Writer, src, root string, warn io.Writer) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := path.Join(root, filepath.ToSlash(rel))
		if rel == "." {
			name = root
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if name == "" || name == "." {
			return nil // the root itself when copying contents
		}
		return writeEntry(tw, p, name, info, warn)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func writeEntry(tw *tar.Writer, p, name string, info fs.FileInfo, warn io.Writer) error {
	var link string
	switch m := info.Mode(); {
	case m.IsRegular(), m.IsDir():
	case m&fs.ModeSymlink != 0:
		var err error
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	default:
		fmt.Fprintf(warn, "agentkernel: skipping %s: not a regular file, directory or link\n", p)
		return nil
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	hdr.Name = name
	if info.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.Format = tar.FormatPAX
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	// Exactly the size announced: a file that grows is cut, one that
	// shrinks is an error.
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("%s: changed while being copied: %w", p, err)
	}
	return nil
}
