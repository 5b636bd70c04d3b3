package microvm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/oci"
)

// TestImportedImage boots an imported image: one layer made from a
// directory holding only the static agent and a file. The store shifts
// owners into the mapped range; the disk must shift them back.
func TestImportedImage(t *testing.T) {
	requireVM(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.MkdirAll(filepath.Join(src, "data"), 0o755)
	b, err := os.ReadFile(agentBin)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "bin", "agent"), b, 0o755)
	os.WriteFile(filepath.Join(src, "data", "owned.txt"), []byte("mine\n"), 0o644)
	img, err := images.Import(context.Background(), "vmimg-"+newSpec(t).ID[:8], src)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := imageDisk(context.Background(), images.Root(), img.Layers, oci.IDMap{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("debugfs", "-R", "stat /data/owned.txt", disk).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "User:     0") {
		t.Fatalf("owner on the disk (want 0): %v\n%s", err, out)
	}
	be := newBackend(t, Options{})
	s := newSpec(t)
	s.Rootfs = backend.RootfsSpec{Layers: img.Layers}
	in := start(t, be, s)
	c := client(t, in)
	got, errOut, code, err := run(context.Background(), c, "/bin/agent", "--version")
	if err != nil || code != 0 || got == "" {
		t.Fatalf("exec in the image: %q %q %d %v", got, errOut, code, err)
	}
	data, err := c.ReadFile(context.Background(), "/data/owned.txt", 100)
	if err != nil || string(data) != "mine\n" {
		t.Fatalf("file of the image: %q %v", data, err)
	}
	if err := c.WriteFile(context.Background(), "/data/new.txt", 0o644, strings.NewReader("x")); err != nil {
		t.Fatalf("writing over the image: %v", err)
	}
}

// TestReadOnlyDir copies a read-only host directory into the VM; a
// writable one is refused.
func TestReadOnlyDir(t *testing.T) {
	requireVM(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.txt"), []byte("from the host\n"), 0o644)
	be := newBackend(t, Options{})
	s := newSpec(t)
	s.Mounts = []backend.Mount{{HostPath: dir, Path: "/probe", ReadOnly: true}}
	in := start(t, be, s)
	c := client(t, in)
	out, _, code, err := run(context.Background(), c, "sh", "-c", "cat /probe/in.txt; touch /probe/x 2>/dev/null && echo writable; true")
	if err != nil || code != 0 || out != "from the host\n" {
		t.Fatalf("read-only dir: %q %d %v", out, code, err)
	}
	s2 := newSpec(t)
	s2.Mounts = []backend.Mount{{HostPath: dir, Path: "/w"}}
	if _, err := be.Start(context.Background(), s2); err == nil || !strings.Contains(err.Error(), "writable host directories") {
		t.Fatalf("writable dir: %v", err)
	}
}
