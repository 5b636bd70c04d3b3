// Package content keeps blobs (manifests, configs, compressed layers) by
// digest, in the blobs/sha256/ directory of an OCI image layout.
//
// A blob is written to a temporary file in the store's staging directory
// while its bytes are counted and hashed, synced, and renamed into
// blobs/sha256/<hex> only once its size and SHA-256 digest match what was
// expected: a blob under its name is always complete and correct, and a
// failed or mismatched write leaves nothing behind. A Store is safe for
// concurrent use; two writers of the same blob each verify their copy and
// the last rename wins (the contents are identical).
package content

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Store is a directory of blobs. Create it with Open.
type Store struct {
	dir string // <layout>/blobs/sha256
	tmp string // staging, on the same filesystem
}

// Open returns the blob store of the OCI layout at root, creating
// root/blobs/sha256 and root/oci-layout if needed; tmp is a staging
// directory on the same filesystem.
func Open(root, tmp string) (*Store, error) {
	s := &Store{dir: filepath.Join(root, "blobs", "sha256"), tmp: tmp}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the blob store: %w", err)
	}
	layout := filepath.Join(root, "oci-layout")
	if _, err := os.Stat(layout); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(layout, []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o600); err != nil {
			return nil, fmt.Errorf("creating the blob store: %w", err)
		}
	}
	return s, nil
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// check accepts only sha256 digests, the only algorithm we store.
func check(d v1.Hash) error {
	if d.Algorithm != "sha256" || !hexRE.MatchString(d.Hex) {
		return fmt.Errorf("%w: unsupported digest %q (only sha256)", errdefs.ErrInvalidArgument, d.String())
	}
	return nil
}

// Path returns where blob d lives (whether or not it exists).
func (s *Store) Path(d v1.Hash) string { return filepath.Join(s.dir, d.Hex) }

// Has reports whether blob d is stored, and its size.
func (s *Store) Has(d v1.Hash) (int64, bool) {
	if check(d) != nil {
		return 0, false
	}
	fi, err := os.Stat(s.Path(d))
	if err != nil || !fi.Mode().IsRegular() {
		return 0, false
	}
	return fi.Size(), true
}

// Open opens blob d for reading.
func (s *Store) Open(d v1.Hash) (*os.File, error) {
	if err := check(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.Path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob %s", errdefs.ErrNotFound, d)
	}
	return f, err
}

// Delete removes blob d; a missing blob is not an error.
func (s *Store) Delete(d v1.Hash) error {
	if err := check(d); err != nil {
		return err
	}
	if err := os.Remove(s.Path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Walk calls fn for every stored blob. Files that are not blobs are
// skipped.
func (s *Store) Walk(fn func(d v1.Hash, size int64) error) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !hexRE.MatchString(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if err := fn(v1.Hash{Algorithm: "sha256", Hex: e.Name()}, fi.Size()); err != nil {
			return err
		}
	}
	return nil
}

// PutBytes stores b as blob d after checking that it hashes to d.
func (s *Store) PutBytes(d v1.Hash, b []byte) error {
	w, err := s.Writer(d, int64(len(b)))
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Commit()
}

// Writer receives one blob. Write it fully, then Commit; Close discards an
// uncommitted blob and is always safe to call. A Writer is used by one
// goroutine.
type Writer struct {
	s    *Store
	want v1.Hash
	size int64
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// Writer starts a blob that must be size bytes with digest d.
func (s *Store) Writer(d v1.Hash, size int64) (*Writer, error) {
	if err := check(d); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("%w: blob %s has a negative size", errdefs.ErrInvalidArgument, d)
	}
	f, err := os.CreateTemp(s.tmp, "blob-*")
	if err != nil {
		return nil, fmt.Errorf("storing blob %s: %w", d, err)
	}
	return &Writer{s: s, want: d, size: size, f: f, h: sha256.New()}, nil
}

// Write hashes and stores p; more bytes than the expected size are an
// error at once.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errors.New("content: write after commit or close")
	}
	if w.n+int64(len(p)) > w.size {
		return 0, fmt.Errorf("%w: blob %s is larger than the %d bytes its descriptor says", errdefs.ErrInvalidArgument, w.want, w.size)
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		return n, fmt.Errorf("storing blob %s: %w", w.want, err)
	}
	return n, nil
}

// Written is the number of bytes written so far.
func (w *Writer) Written() int64 { return w.n }

// Verify checks the bytes written so far against the expected size and
// digest, without committing.
func (w *Writer) Verify() error {
	if w.n != w.size {
		return fmt.Errorf("%w: blob %s: got %d bytes, its descriptor says %d", errdefs.ErrInvalidArgument, w.want, w.n, w.size)
	}
	if got := hex.EncodeToString(w.h.Sum(nil)); got != w.want.Hex {
		return fmt.Errorf("%w: blob %s does not match its digest (its content hashes to sha256:%s)", errdefs.ErrInvalidArgument, w.want, got)
	}
	return nil
}

// Commit verifies the blob, syncs it and moves it into the store.
func (w *Writer) Commit() error {
	if w.done {
		return errors.New("content: commit after commit or close")
	}
	defer w.Close()
	if err := w.Verify(); err != nil {
		return err
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("storing blob %s: %w", w.want, err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("storing blob %s: %w", w.want, err)
	}
	if err := os.Rename(w.f.Name(), w.s.Path(w.want)); err != nil {
		return fmt.Errorf("storing blob %s: %w", w.want, err)
	}
	w.done = true
	return nil
}

// Close discards the blob unless it was committed. Idempotent.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	return os.Remove(w.f.Name())
}

// Ensure io.Writer.
var _ io.Writer = (*Writer)(nil)
