package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ReadOS reads a file from disk; a missing file is not an error.
func ReadOS(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, true, nil
}

// Apply carries out the changes: files are written atomically (a
// temporary file renamed over the old one, through a symlink to its
// target), keeping their mode; new ones get 0600 under the home
// directory's dot-directories and 0644 in a project, their new parent
// directories 0700 or 0755 likewise. Unchanged files are not touched.
func Apply(changes []Change) error {
	for _, c := range changes {
		var err error
		switch c.Status {
		case StatusUnchanged:
		case StatusRemoved:
			err = removeFile(c.File.Path)
		default:
			err = WriteAtomic(c.File.Path, c.After, c.File.Global)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// WriteAtomic replaces path with data.
func WriteAtomic(path string, data []byte, private bool) error {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		path = r
	}
	mode := fs.FileMode(0o644)
	dirMode := fs.FileMode(0o755)
	if private {
		mode, dirMode = 0o600, 0o700
	}
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".agentkernel-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	ok = true
	return nil
}

// removeFile removes path and then its directory if that is left empty
// (the skill's own directory).
func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	if dir := filepath.Dir(path); strings.HasSuffix(dir, string(filepath.Separator)+ServerName) {
		_ = os.Remove(dir) // fails when not empty
	}
	return nil
}
