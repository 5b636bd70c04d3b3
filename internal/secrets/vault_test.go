package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestVaultRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	v, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	const value = "sk-live-0123456789abcdef"
	if _, err := v.Set("OPENAI_API_KEY", value); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Set("OTHER", "x"); err != nil {
		t.Fatal(err)
	}
	got, err := v.Get("OPENAI_API_KEY")
	if err != nil || got != value {
		t.Fatalf("Get: %q %v", got, err)
	}
	// A second Vault on the same directory (a restarted daemon) reads it.
	v2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v2.Get("OPENAI_API_KEY"); err != nil || got != value {
		t.Fatalf("reopened Get: %q %v", got, err)
	}
	list, err := v2.List()
	if err != nil || len(list) != 2 || list[0].Name != "OPENAI_API_KEY" || list[1].Name != "OTHER" || list[0].CreatedAt.IsZero() {
		t.Fatalf("List: %+v %v", list, err)
	}
	// Nothing on disk holds the value in the clear; the files are private.
	for _, f := range []string{DataFile, KeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(value)) {
			t.Fatalf("%s holds the value in the clear", f)
		}
		fi, _ := os.Stat(filepath.Join(dir, f))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, fi.Mode())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("vault dir mode %v", fi.Mode())
	}
	// Replacing keeps the creation time.
	before := list[0]
	info, err := v.Set("OPENAI_API_KEY", "new")
	if err != nil || !info.CreatedAt.Equal(before.CreatedAt) || info.UpdatedAt.Before(before.UpdatedAt) {
		t.Fatalf("replace: %+v %v", info, err)
	}
	if got, _ := v.Get("OPENAI_API_KEY"); got != "new" {
		t.Fatalf("after replace: %q", got)
	}
	if err := v.Delete("OPENAI_API_KEY"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get("OPENAI_API_KEY"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := v.Delete("OPENAI_API_KEY"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestVaultRefusals(t *testing.T) {
	dir := t.TempDir()
	v, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "../x", "a b", "-x", string(make([]byte, 300))} {
		if _, err := v.Set(name, "v"); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Set(%q): %v", name, err)
		}
	}
	if _, err := v.Set("EMPTY", ""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("empty value: %v", err)
	}
	if _, err := v.Set("BIG", string(make([]byte, MaxValueBytes+1))); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("big value: %v", err)
	}
	// A key readable by others is refused rather than used.
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := Open(dir); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("open with a 0644 key: %v", err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o600)
}

// TestVaultTamper: a ciphertext moved to another name, or decrypted with
// another key, is refused rather than returned.
func TestVaultTamper(t *testing.T) {
	dir := t.TempDir()
	v, _ := Open(dir)
	v.Set("A", "value-a")
	v.Set("B", "value-b")
	p := filepath.Join(dir, DataFile)
	b, _ := os.ReadFile(p)
	var f file
	json.Unmarshal(b, &f)
	f.Secrets["A"], f.Secrets["B"] = f.Secrets["B"], f.Secrets["A"]
	b, _ = json.Marshal(f)
	os.WriteFile(p, b, 0o600)
	if got, err := v.Get("A"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("swapped ciphertext: %q %v", got, err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, DataFile), b, 0o600)
	v2, _ := Open(other)
	if _, err := v2.Get("B"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("another vault's key: %v", err)
	}
	os.WriteFile(p, []byte("{not json"), 0o600)
	if _, err := v.List(); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("damaged file: %v", err)
	}
}

func TestVaultConcurrent(t *testing.T) {
	v, _ := Open(t.TempDir())
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := fmt.Sprintf("K%d", i)
			if _, err := v.Set(n, n+"-value"); err != nil {
				t.Error(err)
			}
			if got, err := v.Get(n); err != nil || got != n+"-value" {
				t.Errorf("%s: %q %v", n, got, err)
			}
		}()
	}
	wg.Wait()
	if list, _ := v.List(); len(list) != 16 {
		t.Fatalf("%d entries", len(list))
	}
}

func FuzzDecodeFile(f *testing.F) {
	f.Add([]byte(`{"version":1,"secrets":{"A":{"nonce":"AAAA","ciphertext":"AAAA"}}}`))
	f.Add([]byte(`{"version":1,"secrets":{"../x":null}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := decodeFile(b)
		if err != nil {
			return
		}
		for n, e := range fl.Secrets {
			if checkName(n) != nil || e == nil {
				t.Fatalf("accepted entry %q", n)
			}
		}
	})
}
