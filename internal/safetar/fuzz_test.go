package safetar

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// canary is a fixed directory outside every extraction target. Hostile
// archives in the corpus aim at it by absolute path; it must stay empty.
var canary = filepath.Join(os.TempDir(), "safetar-fuzz-canary")

// fuzzExtract extracts data into a fresh directory and checks that nothing
// appeared outside it.
func fuzzExtract(t *testing.T, data []byte) {
	if err := os.MkdirAll(canary, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, check := sandbox(t)
	noOpenat2.Store(len(data)%2 == 1) // exercise both resolvers
	defer noOpenat2.Store(false)
	Extract(context.Background(), dir, bytes.NewReader(data), Options{MaxBytes: 1 << 20, MaxEntries: 64})
	check()
	if ents, err := os.ReadDir(canary); err != nil || len(ents) != 0 {
		t.Fatalf("canary %s: %d entries, %v", canary, len(ents), err)
	}
	// Make everything removable for t.TempDir's cleanup.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
}

// FuzzExtract feeds raw bytes to Extract as a tar stream.
func FuzzExtract(f *testing.F) {
	for _, entries := range hostile(canary) {
		f.Add(makeTar(f, entries...))
	}
	f.Add(makeTar(f, entry{typ: tar.TypeDir, name: "a/"}, entry{typ: tar.TypeReg, name: "a/b", body: "x"}))
	f.Add([]byte("garbage"))
	f.Fuzz(fuzzExtract)
}

// FuzzExtractEntries builds a well-formed archive from fuzz data, so that
// the fuzzer explores combinations of entry types, names and link targets
// rather than tar's header checksums.
func FuzzExtractEntries(f *testing.F) {
	f.Add([]byte{2, 3, 0, 0, 1, 3, 0, 0})
	f.Add([]byte{2, 0, 7, 0, 0, 0, 0, 0})
	f.Add([]byte{3, 2, 6, 0, 2, 1, 0, 0, 0, 2, 0, 1})
	f.Add([]byte{2, 0, 6, 0, 0, 0, 1, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		entries := decodeEntries(data)
		for i := range entries {
			if entries[i].typ != tar.TypeDir {
				entries[i].name = strings.TrimRight(entries[i].name, "/")
				if entries[i].name == "" {
					entries[i].name = "x"
				}
			}
		}
		fuzzExtract(t, makeTar(t, entries...))
	})
}

// parts are the building blocks of fuzzed names and link targets.
var parts = []string{"a", "b", "l", ".", "..", "", "/", canary, "../outside", "sentinel"}

var types = []byte{tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar}

// decodeEntries turns each 4 bytes into an entry: type, two name parts,
// link target part.
func decodeEntries(data []byte) []entry {
	var out []entry
	for len(data) >= 4 && len(out) < 32 {
		b := data[:4]
		data = data[4:]
		name := strings.TrimPrefix(parts[int(b[1])%len(parts)]+"/"+parts[int(b[2])%len(parts)], "/")
		if name == "" {
			name = "x"
		}
		out = append(out, entry{
			typ:  types[int(b[0])%len(types)],
			name: name,
			link: parts[int(b[3])%len(parts)] + "/" + parts[int(b[1])%len(parts)],
			body: "data",
		})
	}
	return out
}
