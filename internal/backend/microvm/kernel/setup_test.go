package kernel

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSetup fetches the real kernel (once per machine: the cache is
// /var/cache/agentkernel) and installs it into a temporary directory.
func TestSetup(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: Setup downloads a kernel package")
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and apt-get (Debian)")
	}
	dir := t.TempDir()
	k, err := Setup(context.Background(), SetupOptions{Dir: dir, CacheDir: "/var/cache/agentkernel/kernel", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Manifest.Version != k.Manifest.Version || !strings.HasPrefix(got.Manifest.Package, "linux-image-") {
		t.Fatalf("manifest %+v", got.Manifest)
	}
	elf, err := os.ReadFile(got.Vmlinux)
	if err != nil || !bytes.HasPrefix(elf, []byte("\x7fELF")) {
		t.Fatalf("vmlinux: %v", err)
	}
	var names []string
	for _, m := range got.Manifest.Modules {
		names = append(names, m)
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"virtio_mmio", "virtio_blk", "virtio_console", "overlay"} {
		if !strings.Contains(all, want+".ko") {
			t.Errorf("module %s missing from %v", want, names)
		}
	}
	// Dependencies come first.
	if i, j := strings.Index(all, "virtio_ring.ko"), strings.Index(all, "virtio_blk.ko"); i < 0 || i > j {
		t.Errorf("virtio_ring not before virtio_blk: %v", names)
	}
	for _, p := range got.ModulePaths() {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	// A second Setup finds it installed.
	if _, err := Setup(context.Background(), SetupOptions{Dir: dir, CacheDir: "/var/cache/agentkernel/kernel"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "agentkernel setup") {
		t.Fatalf("missing kernel: %v", err)
	}
}

func TestResolveModules(t *testing.T) {
	mods := map[string]Module{
		"virtio_ring": {Name: "virtio_ring"},
		"virtio":      {Name: "virtio", Depends: []string{"virtio_ring"}},
		"virtio_blk":  {Name: "virtio_blk", Depends: []string{"virtio", "virtio_ring"}},
		"virtio_mmio": {Name: "virtio_mmio", Depends: []string{"virtio", "virtio_ring"}},
		"virtio_rng":  {Name: "virtio_rng", Depends: []string{"virtio_ring", "virtio"}},
	}
	got, err := ResolveModules(mods, []string{"virtio_mmio", "virtio_blk", "virtio-rng", "ext4"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range got {
		names = append(names, m.Name)
	}
	if strings.Join(names, " ") != "virtio_ring virtio virtio_mmio virtio_blk virtio_rng" {
		t.Fatalf("got %v", names)
	}
	cyc := map[string]Module{"a": {Name: "a", Depends: []string{"b"}}, "b": {Name: "b", Depends: []string{"a"}}}
	if _, err := ResolveModules(cyc, []string{"a"}); err == nil {
		t.Fatal("a cycle was accepted")
	}
	if _, err := ResolveModules(map[string]Module{"a": {Name: "a", Depends: []string{"c"}}}, []string{"a"}); err == nil {
		t.Fatal("a missing dependency was accepted")
	}
	if d := parseModinfo([]byte("license=GPL\x00depends=virtio,virtio-ring\x00name=x\x00")); strings.Join(d, ",") != "virtio,virtio_ring" {
		t.Fatalf("modinfo: %v", d)
	}
}
