package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/safetar"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func newCpCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy files and directories between the host and a sandbox",
		Long: `Cp copies a file or a directory between the host and a sandbox. Exactly one
of SRC and DST is a sandbox path, written NAME:/absolute/path; the other is a
host path (write ./a:b for a host file whose name has a colon).

As with docker cp:
  - DST an existing directory: SRC is copied into it, keeping its name.
  - DST missing: SRC is copied to that name (its parent must exist); a
    DST ending in / must be an existing directory.
  - DST an existing file: a file SRC replaces it; a directory cannot.
  - A host SRC ending in /. copies the directory's contents, not the
    directory.
  - SRC - reads a tar stream from stdin and extracts it into the sandbox
    directory DST; DST - writes the sandbox path as a tar stream to stdout.

Symbolic links are copied as links. What comes out of a sandbox is
untrusted: it is extracted so that nothing lands outside DST.`,
		Example: `  agentkernel cp ./src dev:/workspace/
  agentkernel cp dev:/workspace/out.txt .
  agentkernel cp dev:/var/log - | tar t`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst, err := parseCpArgs(args[0], args[1])
			if err != nil {
				return err
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			if src.remote() {
				return copyFromSandbox(cmd.Context(), c, src, dst.Path, cmd.OutOrStdout())
			}
			return copyToSandbox(cmd.Context(), c, src.Path, dst, cmd.InOrStdin(), cmd.ErrOrStderr())
		},
	}
}

// copyFromSandbox copies src out of its sandbox to the host path dst ("-"
// is stdout, as a tar stream).
func copyFromSandbox(ctx context.Context, c *client.Client, src cpPath, dst string, stdout io.Writer) (retErr error) {
	fi, statErr := os.Stat(dst)
	switch {
	case dst == "-":
	case statErr == nil:
	case !errors.Is(statErr, os.ErrNotExist):
		return statErr
	case strings.HasSuffix(dst, "/"):
		return fmt.Errorf("destination directory %s does not exist", dst)
	default:
		parent, err := os.Stat(filepath.Dir(dst))
		if err != nil || !parent.IsDir() {
			return fmt.Errorf("the parent directory of %s does not exist", dst)
		}
	}

	rc, err := c.TarOut(ctx, src.Sandbox, src.clean())
	if err != nil {
		return err
	}
	defer rc.Close()
	if dst == "-" {
		_, err := io.Copy(stdout, rc)
		return err
	}
	if statErr == nil && fi.IsDir() {
		// Into an existing directory, keeping the source's name.
		return safetar.Extract(ctx, dst, rc, safetar.Options{})
	}
	// To a new name, or over a file: extract beside it, then rename, so a
	// failure leaves dst as it was.
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".agentkernel-cp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := safetar.Extract(ctx, tmp, rc, safetar.Options{}); err != nil {
		return err
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	if len(entries) != 1 {
		return fmt.Errorf("copying %s:%s: the sandbox sent %d top-level entries, want 1", src.Sandbox, src.Path, len(entries))
	}
	got := filepath.Join(tmp, entries[0].Name())
	if statErr == nil && entries[0].IsDir() {
		return fmt.Errorf("cannot copy directory %s:%s over file %s", src.Sandbox, src.Path, dst)
	}
	return os.Rename(got, dst)
}

// remoteKind is what a sandbox path is.
type remoteKind int

const (
	remoteMissing remoteKind = iota
	remoteDir
	remoteFile
)

// statRemote says what p is in the sandbox by listing its parent. A parent
// that does not exist is an error.
func statRemote(ctx context.Context, c *client.Client, name, p string) (remoteKind, error) {
	if p == "/" {
		return remoteDir, nil
	}
	parent, base := path.Split(p)
	entries, err := c.ListDir(ctx, name, path.Clean(parent))
	if errors.Is(err, errdefs.ErrNotFound) {
		return 0, fmt.Errorf("the parent directory of %s:%s does not exist", name, p)
	}
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if e.Name != base {
			continue
		}
		switch {
		case e.IsDir:
			return remoteDir, nil
		case e.Link != "":
			// A link to a directory counts as the directory.
			if _, err := c.ListDir(ctx, name, p); err == nil {
				return remoteDir, nil
			}
		}
		return remoteFile, nil
	}
	return remoteMissing, nil
}

// copyToSandbox copies the host path src ("-": a tar stream on stdin) into
// a sandbox.
func copyToSandbox(ctx context.Context, c *client.Client, src string, dst cpPath, stdin io.Reader, warn io.Writer) error {
	name, dstPath := dst.Sandbox, dst.clean()
	if src == "-" {
		return c.TarIn(ctx, name, dstPath, stdin)
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	srcContents := dst.Path != "" && (strings.HasSuffix(src, "/.") || src == ".") && fi.IsDir()
	kind, err := statRemote(ctx, c, name, dstPath)
	if err != nil {
		return err
	}
	var dir, root string
	switch {
	case srcContents:
		if kind == remoteFile {
			return fmt.Errorf("cannot copy the contents of directory %s onto file %s:%s", src, name, dst.Path)
		}
		dir, root = dstPath, ""
	case kind == remoteDir:
		dir, root = dstPath, filepath.Base(filepath.Clean(src))
	case kind == remoteMissing && dst.dirOnly() && !fi.IsDir():
		return fmt.Errorf("destination directory %s:%s does not exist", name, dst.Path)
	case kind == remoteFile && fi.IsDir():
		return fmt.Errorf("cannot copy directory %s over file %s:%s", src, name, dst.Path)
	default: // missing, or a file to replace
		dir, root = path.Dir(dstPath), path.Base(dstPath)
	}
	if root == "/" || root == ".." {
		return fmt.Errorf("cannot copy %s", src)
	}

	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := writeTar(ctx, pw, src, root, warn)
		pw.CloseWithError(err)
		werr <- err
	}()
	err = c.TarIn(ctx, name, dir, pr)
	pr.CloseWithError(errors.New("upload ended"))
	if wErr := <-werr; wErr != nil && err == nil {
		err = wErr
	}
	return err
}
