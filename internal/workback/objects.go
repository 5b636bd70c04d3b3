package workback

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// migrate copies the scratch repository's objects (only new ones; see
// scratch) into the host repository's objects directory dst, the way git
// moves a push out of quarantine: each file is written under a temporary
// tmp_obj_ name (which git prune clears if left behind) in its final
// directory and then linked into place, so no reader sees half an object;
// an object already there is left alone. Loose objects go first, then
// packs, each pack's .idx after its data.
func (s *scratch) migrate(dst string) error {
	src := filepath.Join(s.gitDir, "objects")
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel == "info" {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.SliceStable(files, func(i, j int) bool { return migrateOrder(files[i]) < migrateOrder(files[j]) })
	for _, rel := range files {
		if err := copyObject(filepath.Join(src, rel), filepath.Join(dst, rel)); err != nil {
			return err
		}
	}
	return nil
}

func migrateOrder(rel string) int {
	switch {
	case !strings.HasPrefix(rel, "pack"+string(filepath.Separator)):
		return 0
	case strings.HasSuffix(rel, ".idx"):
		return 3
	case strings.HasSuffix(rel, ".pack"):
		return 1
	}
	return 2
}

func copyObject(from, to string) error {
	if _, err := os.Lstat(to); err == nil {
		return nil
	}
	dir := filepath.Dir(to)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(dir, "tmp_obj_")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, in)
	if err == nil {
		err = tmp.Chmod(0o444)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	err = os.Link(tmp.Name(), to)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		err = os.Rename(tmp.Name(), to) // a file system without hard links
	}
	if errors.Is(err, fs.ErrExist) {
		err = nil
	}
	return err
}
