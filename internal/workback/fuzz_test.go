package workback

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/safetar"
)

// fuzzCanary is a fixed directory outside every stage directory; seeds
// aim at it by absolute and relative paths. It must stay empty.
var fuzzCanary = filepath.Join(os.TempDir(), "workback-fuzz-canary")

// checkTree reads data as a sandbox's tree and checks the invariants that
// Collect relies on, whatever the bytes.
func checkTree(t *testing.T, data []byte, root string) {
	if err := os.MkdirAll(fuzzCanary, 0o755); err != nil {
		t.Fatal(err)
	}
	stage := t.TempDir()
	var n notes
	tr, err := readTree(context.Background(), bytes.NewReader(data), root, Limits{MaxBytes: 1 << 20, MaxFileBytes: 1 << 16, MaxEntries: 64}, stage, &n)
	if err == nil {
		for p, nd := range tr.nodes {
			if clean, err := safetar.CleanName(p); err != nil || clean != p || p == "" {
				t.Fatalf("unclean path %q in the tree", p)
			}
			if hasGitComponent(p) {
				t.Fatalf("a .git path %q in the tree", p)
			}
			if i := strings.LastIndexByte(p, '/'); i >= 0 {
				if parent, ok := tr.nodes[p[:i]]; !ok || !parent.dir {
					t.Fatalf("%q has no parent directory in the tree", p)
				}
			}
			if !nd.dir && filepath.Dir(nd.blob) != stage {
				t.Fatalf("%q staged at %q, outside %q", p, nd.blob, stage)
			}
			if !nd.dir && nd.mode != modeFile && nd.mode != modeExec && nd.mode != modeLink {
				t.Fatalf("%q has mode %q", p, nd.mode)
			}
		}
	}
	// The stage holds only regular files under numbered names.
	ents, rerr := os.ReadDir(stage)
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || strings.Trim(e.Name(), "0123456789") != "" {
			t.Fatalf("stage holds %q (%v)", e.Name(), e.Type())
		}
	}
	if ents, err := os.ReadDir(fuzzCanary); err != nil || len(ents) != 0 {
		t.Fatalf("canary %s: %d entries, %v", fuzzCanary, len(ents), err)
	}
}

// FuzzReadTree feeds raw bytes to the reader of sandbox trees.
func FuzzReadTree(f *testing.F) {
	seeds := [][]hostileEntry{
		{{typ: tar.TypeReg, name: "a", body: "x"}, {typ: tar.TypeDir, name: "d/"}, {typ: tar.TypeReg, name: "d/b", body: "y", mode: 0o755}},
		{{typ: tar.TypeReg, name: "../x", body: "x"}},
		{{typ: tar.TypeReg, name: fuzzCanary + "/x", body: "x"}},
		{{typ: tar.TypeSymlink, name: "l", link: fuzzCanary}, {typ: tar.TypeReg, name: "l/x", body: "x"}},
		{{typ: tar.TypeReg, name: "f", body: "x"}, {typ: tar.TypeLink, name: "h", link: "f"}, {typ: tar.TypeLink, name: "o", link: "/etc/passwd"}},
		{{typ: tar.TypeChar, name: "null", dev: 1}},
		{{typ: tar.TypeFifo, name: "p"}, {typ: tar.TypeReg, name: ".git/config", body: "[core]"}, {typ: tar.TypeReg, name: "a/GIT~1/x", body: "x"}},
		{{typ: tar.TypeReg, name: "big", size: 2 << 30}},
		{{typ: tar.TypeReg, name: "workspace/a", body: "x"}, {typ: tar.TypeReg, name: "elsewhere", body: "x"}},
	}
	for _, s := range seeds {
		f.Add(hostileTar(f, s...), "")
		f.Add(hostileTar(f, s...), "workspace")
	}
	f.Add([]byte("garbage"), "")
	f.Fuzz(func(t *testing.T, data []byte, root string) {
		if _, err := safetar.CleanName(root); err != nil {
			return
		}
		checkTree(t, data, root)
	})
}

// FuzzReadTreeEntries builds well-formed archives from the fuzz data, so
// that the fuzzer explores combinations of entry types, names and link
// targets rather than tar checksums.
func FuzzReadTreeEntries(f *testing.F) {
	f.Add([]byte{0, 1, 0, 3, 2, 0})
	f.Add([]byte{3, 2, 6, 2, 1, 0})
	f.Add([]byte{4, 0, 0, 5, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		names := []string{"a", "a/b", "l", "l/x", "../x", fuzzCanary + "/x", ".git/x", "d/", "a/b/c", ""}
		types := []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar}
		var es []hostileEntry
		for i := 0; i+2 < len(data) && len(es) < 16; i += 3 {
			e := hostileEntry{
				typ:  types[int(data[i])%len(types)],
				name: names[int(data[i+1])%len(names)],
				link: names[int(data[i+2])%len(names)],
				body: "content",
				mode: 0o644 | int64(data[i+2]&1)*0o111,
			}
			if e.typ != tar.TypeDir {
				e.name = strings.TrimSuffix(e.name, "/")
			}
			if e.name == "" {
				continue
			}
			if e.typ == tar.TypeSymlink && e.link == "" {
				e.link = fuzzCanary
			}
			es = append(es, e)
		}
		checkTree(t, hostileTar(t, es...), "")
	})
}
