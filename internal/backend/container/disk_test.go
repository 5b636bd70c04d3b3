package container

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeDiskFromTemplate: a disk copied from the template is the same
// bytes, as sparse as the template, and a valid ext4 filesystem.
func TestMakeDiskFromTemplate(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 is not installed (e2fsprogs; scripts/setup.sh installs it)")
	}
	dir := t.TempDir()
	tpls := filepath.Join(dir, "templates")
	a, b := filepath.Join(dir, "a.ext4"), filepath.Join(dir, "b.ext4")
	if err := makeDisk(context.Background(), a, 64, tpls); err != nil {
		t.Fatal(err)
	}
	if err := makeDisk(context.Background(), b, 64, tpls); err != nil {
		t.Fatal(err)
	}
	tpl := filepath.Join(tpls, "ext4-64.img")
	want, err := os.ReadFile(tpl)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{a, b} {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s differs from the template (%d bytes, %v)", p, len(got), err)
		}
		var st, tst syscall.Stat_t
		syscall.Stat(p, &st)
		syscall.Stat(tpl, &tst)
		if st.Size != 64<<20 || st.Blocks > tst.Blocks+8 || st.Blocks*512 > 16<<20 {
			t.Errorf("%s: size %d, %d blocks allocated (template %d): not sparse", p, st.Size, st.Blocks, tst.Blocks)
		}
		if out, err := exec.Command("e2fsck", "-n", "-f", p).CombinedOutput(); err != nil {
			t.Errorf("e2fsck %s: %v\n%s", p, err, out)
		}
	}
	// An existing disk is kept: it holds the sandbox's files.
	os.WriteFile(a, []byte("kept"), 0o600)
	if err := makeDisk(context.Background(), a, 64, tpls); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(a); string(got) != "kept" {
		t.Errorf("an existing disk was replaced")
	}
}

// TestSpecWithoutDisk: a spec from before disks had a size (DiskMB 0)
// still starts, with its files in StateDir as they were, and no disk.
func TestSpecWithoutDisk(t *testing.T) {
	e := newEnv(t)
	s := e.spec(t)
	s.Resources.DiskMB = 0
	inst := e.start(t, s)
	sh(t, inst, "echo old > /root/note")
	if b, err := os.ReadFile(filepath.Join(s.StateDir, "persist", "root", "note")); err != nil || string(b) != "old\n" {
		t.Errorf("persist/root/note: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(s.StateDir, diskImage)); !os.IsNotExist(err) {
		t.Errorf("a disk was made for a spec without DiskMB: %v", err)
	}
}

// TestDiskFull: writes past DiskMB fail with ENOSPC in the sandbox, /tmp
// included, and the agent reports the disk full.
func TestDiskFull(t *testing.T) {
	e := newEnv(t)
	s := e.spec(t)
	s.Resources.DiskMB = 64
	inst := e.start(t, s)
	r := run(t, inst, "/bin/sh", "-c", "dd if=/dev/zero of=/root/fill bs=1M count=200")
	if r.Code == 0 || !strings.Contains(r.Stderr, "No space left on device") {
		t.Fatalf("filling a 64 MiB disk: %+v", r)
	}
	if r := run(t, inst, "/bin/sh", "-c", "dd if=/dev/zero of=/tmp/x bs=1M count=4"); r.Code == 0 {
		t.Errorf("/tmp is writable on a full disk: %+v", r)
	}
	d, err := client(t, inst).Disk(context.Background())
	if err != nil || !d.Full() || d.Bytes > 64<<20 {
		t.Errorf("the agent's disk: %+v %v", d, err)
	}
}

// TestPruneTemplates: the template cache keeps the most recently used.
func TestPruneTemplates(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for i := range 5 {
		p := filepath.Join(dir, "ext4-"+strconv.Itoa(100+i)+".img")
		os.WriteFile(p, nil, 0o600)
		os.Chtimes(p, now, now.Add(time.Duration(i)*time.Minute))
	}
	pruneTemplates(dir, 3)
	left, _ := filepath.Glob(filepath.Join(dir, "ext4-*.img"))
	if len(left) != 3 || filepath.Base(left[0]) != "ext4-102.img" {
		t.Errorf("left: %v, want the 3 newest (102, 103, 104)", left)
	}
}
