package microvm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWithBindsMkfs builds a disk from a bind-mounted directory and reads
// it back with debugfs; the bind never shows in this process's mounts.
func TestWithBindsMkfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (bind mounts)")
	}
	debugfs, err := exec.LookPath("debugfs")
	if err != nil {
		t.Skip("debugfs not installed (e2fsprogs)")
	}
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	os.WriteFile(filepath.Join(src, "bin", "tool"), []byte("#!/bin/sh\n"), 0o755)
	dir := t.TempDir()
	stage := filepath.Join(dir, "stage")
	img := filepath.Join(dir, "d.ext4")
	var sawMount bool
	err = withBinds(stage, map[string]string{"usr": src}, map[string]string{"bin": "usr/bin"}, []string{"proc", "tmp"}, func() error {
		b, _ := os.ReadFile("/proc/thread-self/mountinfo") // this thread's namespace
		sawMount = strings.Contains(string(b), " "+filepath.Join(stage, "usr")+" ")
		return mkfs(context.Background(), img, stage, 64<<20, 1024, "test")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !sawMount {
		t.Error("the bind was not visible to fn")
	}
	if mountedUnder(stage) {
		t.Fatal("a bind mount leaked into the process's namespace")
	}
	if _, err := os.Stat(stage); err == nil {
		t.Error("the stage was not removed")
	}
	if _, err := os.Stat(filepath.Join(src, "bin", "tool")); err != nil {
		t.Fatalf("the source was touched: %v", err)
	}
	out, err := exec.Command(debugfs, "-R", "ls -l /usr/bin", img).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "tool") {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
	out, _ = exec.Command(debugfs, "-R", "stat /bin", img).CombinedOutput()
	if !strings.Contains(string(out), "Type: symlink") {
		t.Errorf("/bin is not a symlink:\n%s", out)
	}
}

// TestHostUsrDisk builds the host image's disk from scratch (minutes: it
// copies /usr), so only when AK_TEST_HOST_DISK is set.
func TestHostUsrDisk(t *testing.T) {
	requireVM(t)
	if os.Getenv("AK_TEST_HOST_DISK") == "" {
		t.Skip("set AK_TEST_HOST_DISK=1 to build the host disk from scratch")
	}
	hv, err := images.HostView(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	p, stale, err := hostUsrDisk(context.Background(), cache, hv, true)
	if err != nil || stale {
		t.Fatalf("%s stale=%v: %v", p, stale, err)
	}
	out, err := exec.Command("debugfs", "-R", "stat /usr/bin/sh", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Inode:") {
		t.Fatalf("debugfs: %v\n%s", err, out)
	}
	if mountedUnder(cache) {
		t.Fatal("mounts leaked")
	}
}
