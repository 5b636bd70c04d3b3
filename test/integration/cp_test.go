package integration

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// makeTree writes a small tree with distinct modes, a symlink and an empty
// directory under dir/src and returns its root.
func makeTree(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "src")
	dirs := map[string]os.FileMode{"": 0o750, "sub": 0o755, "sub/deeper": 0o700, "empty": 0o711}
	files := map[string]struct {
		data string
		mode os.FileMode
	}{
		"a.txt":        {"alpha\n", 0o640},
		"sub/b.sh":     {"#!/bin/sh\necho b\n", 0o755},
		"sub/deeper/c": {strings.Repeat("c", 100000), 0o600},
		"bin.dat":      {"\x00\x01\xff binary", 0o604},
	}
	for d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for p, f := range files {
		full := filepath.Join(root, p)
		if err := os.WriteFile(full, []byte(f.data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../a.txt", filepath.Join(root, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	for d, m := range dirs {
		if err := os.Chmod(filepath.Join(root, d), m); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// describeTree lists every entry under root as "path mode content-or-link".
func describeTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %q", truncateMiddle(string(b)))
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func truncateMiddle(s string) string {
	if len(s) <= 64 {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes, sum %d)…%s", s[:16], len(s), byteSum(s), s[len(s)-16:])
}

func byteSum(s string) (n int) {
	for i := 0; i < len(s); i++ {
		n += int(s[i])
	}
	return n
}

func TestCp(t *testing.T) {
	requireEnv(t)
	e := shared
	e.create(t, "it-cp")
	host := t.TempDir()
	src := makeTree(t, host)
	want := describeTree(t, src)

	// A directory tree in and out.
	e.ok(t, "cp", src, "it-cp:/tmp/")
	r := e.ok(t, "exec", "it-cp", "--", "sh", "-c",
		"cd /tmp/src && find . -exec stat -c '%n %a %s' {} + | sort && cat sub/link")
	for _, line := range []string{". 750 ", "./a.txt 640 6", "./sub/b.sh 755 ", "./sub/deeper 700 ", "./sub/deeper/c 600 100000", "./empty 711 ", "./bin.dat 604 "} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("in the sandbox, want %q in:\n%s", line, r.stdout)
		}
	}
	if !strings.HasSuffix(r.stdout, "alpha\n") {
		t.Errorf("symlink sub/link does not lead to a.txt in the sandbox:\n%s", r.stdout)
	}
	back := filepath.Join(host, "back")
	e.ok(t, "cp", "it-cp:/tmp/src", back)
	if got := describeTree(t, back); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tree after a round trip:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Into an existing host directory, keeping the name.
	into := filepath.Join(host, "into")
	os.Mkdir(into, 0o755)
	e.ok(t, "cp", "it-cp:/tmp/src/sub", into)
	if got, err := os.ReadFile(filepath.Join(into, "sub", "b.sh")); err != nil || string(got) != "#!/bin/sh\necho b\n" {
		t.Errorf("cp into a directory: %q %v", got, err)
	}

	// A single file in and out, to a new name.
	e.ok(t, "cp", filepath.Join(src, "bin.dat"), "it-cp:/root/renamed.dat")
	r = e.ok(t, "exec", "it-cp", "--", "stat", "-c", "%a %s", "/root/renamed.dat")
	if r.stdout != "604 10\n" {
		t.Errorf("file in the sandbox: %q", r.stdout)
	}
	out := filepath.Join(host, "out.dat")
	e.ok(t, "cp", "it-cp:/root/renamed.dat", out)
	fi, err := os.Stat(out)
	b, _ := os.ReadFile(out)
	if err != nil || fi.Mode() != 0o604 || string(b) != "\x00\x01\xff binary" {
		t.Errorf("file back on the host: %v %v %q", fi.Mode(), err, b)
	}

	// Errors say what is wrong and copy nothing.
	r = e.ak(t, "cp", "it-cp:/no/such/file", filepath.Join(host, "x"))
	if r.code == 0 || r.stderr == "" || exists(filepath.Join(host, "x")) {
		t.Errorf("cp of a missing sandbox file: %v", r)
	}
	r = e.ak(t, "cp", filepath.Join(host, "missing"), "it-cp:/tmp/")
	if r.code == 0 || !strings.Contains(r.stderr, "missing") {
		t.Errorf("cp of a missing host file: %v", r)
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
