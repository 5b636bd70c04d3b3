package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCpToSandbox(t *testing.T) {
	svc, sock := startDaemon(t)
	svc.add("dev")
	sb := svc.root("dev")
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "proj", "a.txt"), "A")
	writeFile(t, filepath.Join(host, "proj", "sub", "b.txt"), "B")
	os.Symlink("a.txt", filepath.Join(host, "proj", "link"))
	writeFile(t, filepath.Join(host, "one.txt"), "1")
	os.MkdirAll(filepath.Join(sb, "workspace"), 0o755)
	writeFile(t, filepath.Join(sb, "existing.txt"), "old")

	cp := func(args ...string) (string, int) {
		_, errOut, code := cli(t, nil, append([]string{"--socket", sock, "cp"}, args...)...)
		return errOut, code
	}
	// A directory into an existing directory keeps its name.
	if e, code := cp(filepath.Join(host, "proj"), "dev:/workspace"); code != 0 {
		t.Fatalf("dir into dir: %d %s", code, e)
	}
	if readFile(t, filepath.Join(sb, "workspace/proj/sub/b.txt")) != "B" {
		t.Fatal("proj/sub/b.txt not copied")
	}
	if l, err := os.Readlink(filepath.Join(sb, "workspace/proj/link")); err != nil || l != "a.txt" {
		t.Fatalf("symlink: %q %v", l, err)
	}
	// A directory to a new name.
	if e, code := cp(filepath.Join(host, "proj"), "dev:/renamed"); code != 0 {
		t.Fatalf("dir to new name: %d %s", code, e)
	}
	if readFile(t, filepath.Join(sb, "renamed/a.txt")) != "A" {
		t.Fatal("renamed/a.txt not copied")
	}
	// A directory's contents.
	if e, code := cp(filepath.Join(host, "proj")+"/.", "dev:/contents"); code != 0 {
		t.Fatalf("contents: %d %s", code, e)
	}
	if readFile(t, filepath.Join(sb, "contents/sub/b.txt")) != "B" {
		t.Fatal("contents/sub/b.txt not copied")
	}
	// A file over a file, and to a new name; the mode is kept.
	if e, code := cp(filepath.Join(host, "one.txt"), "dev:/existing.txt"); code != 0 {
		t.Fatalf("file over file: %d %s", code, e)
	}
	if readFile(t, filepath.Join(sb, "existing.txt")) != "1" {
		t.Fatal("file not replaced")
	}
	if e, code := cp(filepath.Join(host, "one.txt"), "dev:/workspace/new.txt"); code != 0 {
		t.Fatalf("file to new name: %d %s", code, e)
	}
	if fi, err := os.Stat(filepath.Join(sb, "workspace/new.txt")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("new.txt: %v %v", fi, err)
	}
	// Refusals.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{filepath.Join(host, "proj"), "dev:/existing.txt"}, "over file"},
		{[]string{filepath.Join(host, "one.txt"), "dev:/nodir/"}, "does not exist"},
		{[]string{filepath.Join(host, "one.txt"), "dev:/no/such/parent"}, "parent directory"},
		{[]string{filepath.Join(host, "missing"), "dev:/x"}, "no such file"},
		{[]string{filepath.Join(host, "one.txt"), "nope:/x"}, "nope"},
	} {
		e, code := cp(tc.args...)
		if code != 1 || !strings.Contains(e, tc.want) {
			t.Errorf("cp %v: code %d, stderr %q, want %q", tc.args, code, e, tc.want)
		}
	}
}

func TestCpFromSandbox(t *testing.T) {
	svc, sock := startDaemon(t)
	svc.add("dev")
	sb := svc.root("dev")
	writeFile(t, filepath.Join(sb, "out", "r.txt"), "R")
	writeFile(t, filepath.Join(sb, "out", "deep", "d.txt"), "D")
	writeFile(t, filepath.Join(sb, "file.txt"), "F")
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "old.txt"), "old")

	cp := func(args ...string) (string, string, int) {
		return cli(t, nil, append([]string{"--socket", sock, "cp"}, args...)...)
	}
	if _, e, code := cp("dev:/out", host); code != 0 {
		t.Fatalf("dir into dir: %d %s", code, e)
	}
	if readFile(t, filepath.Join(host, "out/deep/d.txt")) != "D" {
		t.Fatal("out/deep/d.txt not copied")
	}
	if _, e, code := cp("dev:/out/", filepath.Join(host, "new")); code != 0 {
		t.Fatalf("dir to new name: %d %s", code, e)
	}
	if readFile(t, filepath.Join(host, "new/r.txt")) != "R" {
		t.Fatal("new/r.txt not copied")
	}
	if _, e, code := cp("dev:/file.txt", filepath.Join(host, "old.txt")); code != 0 {
		t.Fatalf("file over file: %d %s", code, e)
	}
	if readFile(t, filepath.Join(host, "old.txt")) != "F" {
		t.Fatal("old.txt not replaced")
	}
	// To stdout as a tar stream.
	out, e, code := cp("dev:/file.txt", "-")
	if code != 0 || !strings.Contains(out, "file.txt") || !strings.Contains(out, "F") {
		t.Fatalf("to stdout: %d %s %q", code, e, out)
	}
	// No temporary directories left behind.
	entries, _ := os.ReadDir(host)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), ".agentkernel-cp-") {
			t.Fatalf("left %s behind", en.Name())
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dev:/out", filepath.Join(host, "old.txt")}, "over file"},
		{[]string{"dev:/file.txt", filepath.Join(host, "nodir") + "/"}, "does not exist"},
		{[]string{"dev:/file.txt", filepath.Join(host, "no", "parent")}, "parent directory"},
		{[]string{"dev:/missing", host}, "not found"},
	} {
		_, e, code := cp(tc.args...)
		if code != 1 || !strings.Contains(e, tc.want) {
			t.Errorf("cp %v: code %d, stderr %q, want %q", tc.args, code, e, tc.want)
		}
	}
}

// TestCpHostileArchive: a sandbox that answers with an archive whose entry
// climbs out of the destination gets an error and writes nothing outside.
func TestCpHostileArchive(t *testing.T) {
	svc, sock := startDaemon(t)
	svc.add("dev")
	base := t.TempDir()
	dst := filepath.Join(base, "a", "b")
	os.MkdirAll(dst, 0o755)
	for _, target := range []string{dst, filepath.Join(dst, "fresh")} {
		_, e, code := cli(t, nil, "--socket", sock, "cp", "dev:/hostile", target)
		if code == 0 {
			t.Errorf("cp of a hostile archive to %s succeeded", target)
		}
		if !strings.Contains(e, "agentkernel: ") {
			t.Errorf("stderr %q", e)
		}
		t.Logf("cp to %s: %s", target, strings.TrimSpace(e))
	}
	filepath.Walk(base, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == "escaped" {
			t.Errorf("the archive wrote %s", p)
		}
		return nil
	})
}

func TestCpStdinTar(t *testing.T) {
	svc, sock := startDaemon(t)
	svc.add("dev")
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "x", "y.txt"), "Y")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		writeTar(t.Context(), w, filepath.Join(src, "x"), "x", os.Stderr)
		w.Close()
	}()
	_, e, code := cli(t, r, "--socket", sock, "cp", "-", "dev:/in")
	if code != 0 {
		t.Fatalf("code %d, %s", code, e)
	}
	if readFile(t, filepath.Join(svc.root("dev"), "in/x/y.txt")) != "Y" {
		t.Fatal("in/x/y.txt not extracted")
	}
}
