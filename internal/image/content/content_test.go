package content

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func digest(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func open(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	tmp := filepath.Join(root, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Open(root, tmp)
	if err != nil {
		t.Fatal(err)
	}
	return s, tmp
}

func noTemp(t *testing.T, tmp string) {
	t.Helper()
	if e, _ := os.ReadDir(tmp); len(e) != 0 {
		t.Errorf("temporary files left: %v", e)
	}
}

func TestPutAndVerify(t *testing.T) {
	s, tmp := open(t)
	b := []byte("hello blob")
	d := digest(b)
	if err := s.PutBytes(d, b); err != nil {
		t.Fatal(err)
	}
	if n, ok := s.Has(d); !ok || n != int64(len(b)) {
		t.Errorf("Has = %d %v", n, ok)
	}
	got, err := os.ReadFile(s.Path(d))
	if err != nil || string(got) != string(b) {
		t.Errorf("stored %q %v", got, err)
	}
	// Wrong content for the digest: refused, nothing kept.
	other := digest([]byte("other"))
	if err := s.PutBytes(other, b); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("mismatch: %v", err)
	}
	if _, ok := s.Has(other); ok {
		t.Error("a mismatched blob was kept")
	}
	// More bytes than declared fail at once; fewer fail at commit.
	w, err := s.Writer(digest(b), 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("oversize: %v", err)
	}
	w.Close()
	w, _ = s.Writer(digest(b), int64(len(b))+1)
	w.Write(b)
	if err := w.Commit(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("short: %v", err)
	}
	w.Close()
	noTemp(t, tmp)
	var seen []string
	s.Walk(func(h v1.Hash, _ int64) error { seen = append(seen, h.String()); return nil })
	if len(seen) != 1 || seen[0] != d.String() {
		t.Errorf("walk: %v", seen)
	}
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(d); err != nil {
		t.Errorf("deleting a missing blob: %v", err)
	}
	if _, err := s.Writer(v1.Hash{Algorithm: "sha512", Hex: "ab"}, 1); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("sha512: %v", err)
	}
	if _, err := s.Open(v1.Hash{Algorithm: "sha256", Hex: "../../etc/passwd"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("path in digest: %v", err)
	}
}
