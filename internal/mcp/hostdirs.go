package mcp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Host paths: sandbox_upload_dir and sandbox_download_dir touch the host's
// files, so they are held to the directories the user named when starting
// the server (Policy.HostDirs). Paths are checked with symlinks resolved:
// a link inside an allowed directory that points out of it is refused.

// resolveHostDirs returns dirs absolute, clean and with symlinks
// resolved; each must be an existing directory.
func resolveHostDirs(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("host directory %q is not an absolute path", d)
		}
		r, err := filepath.EvalSymlinks(filepath.Clean(d))
		if err != nil {
			return nil, fmt.Errorf("host directory: %w", err)
		}
		if fi, err := os.Stat(r); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("host directory %s is not a directory", d)
		}
		out = append(out, r)
	}
	return out, nil
}

// hostPath checks that p, symlinks resolved, lies inside one of the
// policy's host directories and returns it resolved. A path that does not
// exist yet is resolved through its deepest existing ancestor (for a
// download's destination).
func (p Policy) hostPath(asked string) (string, error) {
	if len(p.HostDirs) == 0 {
		return "", errors.New("host paths are not allowed: this MCP server was started without --allow-dir")
	}
	if !filepath.IsAbs(asked) {
		return "", fmt.Errorf("host path %q is not absolute", clip(asked))
	}
	r, err := resolveExisting(filepath.Clean(asked))
	if err != nil {
		return "", fmt.Errorf("host path %s: %w", clip(asked), err)
	}
	for _, d := range p.HostDirs {
		if r == d || strings.HasPrefix(r, d+string(filepath.Separator)) {
			return r, nil
		}
	}
	return "", fmt.Errorf("host path %s is outside the directories this MCP server allows (%s)", clip(asked), strings.Join(p.HostDirs, ", "))
}

// resolveExisting resolves the symlinks of p's deepest existing ancestor
// and appends the rest, which does not exist.
func resolveExisting(p string) (string, error) {
	var rest []string
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if _, lerr := os.Lstat(p); lerr == nil {
			return "", fmt.Errorf("%s is a symbolic link to nothing", p)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", err
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}
