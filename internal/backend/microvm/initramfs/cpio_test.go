package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildReadByCpio writes an archive and lists and extracts it with
// GNU cpio, the reference reader of the format.
func TestBuildReadByCpio(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed (apt-get install cpio)")
	}
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent")
	os.WriteFile(agent, []byte("#!/bin/sh\necho agent\n"), 0o755)
	mod := filepath.Join(dir, "00-virtio.ko")
	os.WriteFile(mod, bytes.Repeat([]byte{7}, 4097), 0o644)
	out := filepath.Join(dir, "initrd.cpio")
	if err := Build(out, agent, []string{mod}, map[string][]byte{"agentkernel.json": []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	x := filepath.Join(dir, "x")
	os.Mkdir(x, 0o755)
	f, _ := os.Open(out)
	defer f.Close()
	cmd := exec.Command(cpio, "-idv", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = x, f
	b, err := cmd.CombinedOutput()
	if err != nil && !strings.Contains(string(b), "dev/") { // mknod may fail unprivileged
		t.Fatalf("cpio: %v\n%s", err, b)
	}
	got, err := os.ReadFile(filepath.Join(x, "init"))
	if err != nil || string(got) != "#!/bin/sh\necho agent\n" {
		t.Fatalf("init: %q %v", got, err)
	}
	fi, err := os.Stat(filepath.Join(x, "init"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("init mode: %v %v", fi, err)
	}
	got, err = os.ReadFile(filepath.Join(x, ModulesDir, "000-00-virtio.ko"))
	if err != nil || len(got) != 4097 || got[4096] != 7 {
		t.Fatalf("module: %d bytes, %v", len(got), err)
	}
	if got, err := os.ReadFile(filepath.Join(x, "agentkernel.json")); err != nil || string(got) != "{}" {
		t.Fatalf("extra file: %q %v", got, err)
	}
	if fi, err := os.Stat(filepath.Join(x, "newroot")); err != nil || !fi.IsDir() {
		t.Fatalf("newroot: %v", err)
	}
}

func TestBadNames(t *testing.T) {
	for _, n := range []string{"", "/abs", "../up", "a/../b", "a\x00b", "a//b"} {
		w := NewWriter(&bytes.Buffer{})
		if err := w.Dir(n, 0o755); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
	w := NewWriter(&bytes.Buffer{})
	w.Close()
	if err := w.Dir("x", 0o755); err == nil {
		t.Error("write after Close accepted")
	}
}

func TestShortReader(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	if err := w.File("f", 0o644, strings.NewReader("abc"), 10); err == nil {
		t.Fatal("a short reader gave no error")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a failed write gave no error")
	}
}
