package image

import (
	"io/fs"
	"path/filepath"
)

// BlobBytes is the size of the store's content blobs (the layers as pulled
// or committed, compressed, plus manifests and configs). It does not count
// the unpacked layer trees, which would mean walking every file.
func (s *Store) BlobBytes() (int64, error) {
	var n int64
	err := filepath.WalkDir(filepath.Join(s.root, "blobs"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}
