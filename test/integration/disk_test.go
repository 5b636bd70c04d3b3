package integration

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/testutil"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// Per-sandbox disk quotas (the finding: 2 GiB written to /root inside a
// sandbox landed on the host disk with no limit). Every sandbox writes to
// a disk of its own of --disk-mb: writing past it fails with ENOSPC inside
// the sandbox, which keeps working, says "disk full", and leaves nothing
// behind when removed.

const diskQuotaMB = 128

func TestDiskQuotaContainer(t *testing.T) {
	requireEnv(t)
	testDiskQuota(t, shared, "container", "dq-ctr")
}

func TestDiskQuotaGVisor(t *testing.T) {
	requireRunsc(t)
	testDiskQuota(t, shared, "gvisor", "dq-gv")
}

func TestDiskQuotaMicroVM(t *testing.T) {
	testDiskQuota(t, newMicroVMEnv(t), "microvm", "dq-vm")
}

func testDiskQuota(t *testing.T, e *env, backendName, name string) {
	// The host must have far more room than the limit, so that the
	// limit, not the host, is what stops the writes.
	if free := hostFreeMB(t, e.home); free < 8*diskQuotaMB {
		t.Skipf("only %d MiB free on the host's disk: the test needs room to show the limit is not the host's", free)
	}
	info := e.create(t, name, "--backend", backendName, "--disk-mb", strconv.Itoa(diskQuotaMB), "--memory-mb", "256")
	if info.DiskMB != diskQuotaMB {
		t.Fatalf("disk_mb = %d, want %d", info.DiskMB, diskQuotaMB)
	}
	if info.Disk == nil || info.Disk.Full || info.Disk.SizeMB > diskQuotaMB || info.Disk.SizeMB < diskQuotaMB/2 {
		t.Fatalf("a fresh sandbox's disk: %+v", info.Disk)
	}
	dir := e.sandboxDir(info.UUID)

	// /root (persistent) and /tmp are on the same disk: fill it from /root.
	r := e.ak(t, "exec", name, "--", "dd", "if=/dev/zero", "of=/root/fill", "bs=1M", "count="+strconv.Itoa(4*diskQuotaMB))
	if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") {
		t.Fatalf("writing %d MiB to a %d MiB disk: want ENOSPC; %v", 4*diskQuotaMB, diskQuotaMB, r)
	}
	if !strings.Contains(r.stderr, "disk is full") {
		t.Errorf("the exit status does not say the disk is full: %q", r.stderr)
	}
	r = e.ok(t, "exec", name, "--", "stat", "-c", "%s", "/root/fill")
	if n, _ := strconv.ParseInt(strings.TrimSpace(r.stdout), 10, 64); n > diskQuotaMB<<20 || n < diskQuotaMB<<19 {
		t.Errorf("/root/fill holds %d bytes; want about the %d MiB limit", n, diskQuotaMB)
	}
	// /tmp counts too.
	r = e.ak(t, "exec", name, "--", "dd", "if=/dev/zero", "of=/tmp/more", "bs=1M", "count=4")
	if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") {
		t.Errorf("writing to /tmp on a full disk: %v", r)
	}
	// On the host, the sandbox took about its limit and no more.
	if used := hostUsedMB(t, dir); used > diskQuotaMB+32 {
		t.Errorf("the sandbox's files take %d MiB on the host; the limit is %d MiB", used, diskQuotaMB)
	}

	// The status says so: JSON, the API, the CLI's list and info.
	info = e.info(t, name)
	if info.Status != api.StatusRunning || info.Disk == nil || !info.Disk.Full {
		t.Fatalf("after filling the disk: status %s, disk %+v", info.Status, info.Disk)
	}
	got, err := e.client(t).GetSandbox(context.Background(), name)
	if err != nil || got.Disk == nil || !got.Disk.Full || got.DiskMB != diskQuotaMB {
		t.Errorf("GET /sandboxes/%s: %+v %v", name, got.Disk, err)
	}
	if out := e.ok(t, "sandbox", "list").stdout; !strings.Contains(tableRow(out, name), "running (disk full)") {
		t.Errorf("sandbox list does not say disk full:\n%s", out)
	}
	if out := e.ok(t, "sandbox", "info", name).stdout; !strings.Contains(out, "disk full") || !strings.Contains(out, strconv.Itoa(diskQuotaMB)+" MiB") {
		t.Errorf("sandbox info does not say disk full:\n%s", out)
	}

	// The sandbox keeps working, and deleting files makes room again.
	if r := e.ok(t, "exec", name, "--", "echo", "alive"); r.stdout != "alive\n" {
		t.Fatalf("exec on a full disk: %v", r)
	}
	e.ok(t, "exec", name, "--", "rm", "/root/fill")
	e.ok(t, "exec", name, "--", "dd", "if=/dev/zero", "of=/tmp/after", "bs=1M", "count=8")
	if info = e.info(t, name); info.Disk == nil || info.Disk.Full {
		t.Errorf("after deleting the file: %+v", info.Disk)
	}

	// Removal leaves no disk, loop device or mount behind.
	e.ok(t, "sandbox", "remove", name)
	var left []string
	if !waitFor(30*time.Second, func() bool {
		left = testutil.LoopDevicesUnder(dir)
		_, err := os.Stat(dir)
		return len(left) == 0 && os.IsNotExist(err) && len(mountsOf(e, info.UUID)) == 0
	}) {
		t.Errorf("after removal: loop devices %v, mounts %v, state dir %s still there", left, mountsOf(e, info.UUID), dir)
	}
}

// TestDiskQuotaImage: on an imported image the overlay's upper layer is on
// the disk: filling the root fails with ENOSPC, and a snapshot of the
// stopped sandbox (whose disk is then mounted just to read its changes)
// restores, on gVisor too, with the sandbox's files onto a default-sized
// disk.
func TestDiskQuotaImage(t *testing.T) {
	requireRunsc(t)
	e := shared
	busyboxBase(t, "it-dq-base")
	info := e.create(t, "dq-img", "--image", "it-dq-base", "--disk-mb", "96")
	r := e.ak(t, "exec", "dq-img", "--", "/bin/sh", "-c", "echo kept > /etc/marker && dd if=/dev/zero of=/fill bs=1M count=300")
	if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") || !strings.Contains(r.stderr, "disk is full") {
		t.Fatalf("filling the root of an imported image: %v", r)
	}
	if used := hostUsedMB(t, e.sandboxDir(info.UUID)); used > 96+32 {
		t.Errorf("the sandbox's files take %d MiB on the host; the limit is 96 MiB", used)
	}
	e.ok(t, "exec", "dq-img", "--", "rm", "/fill")
	e.ok(t, "sandbox", "stop", "dq-img")
	e.ok(t, "snapshot", "take", "dq-img", "-n", "it-dq-snap")
	t.Cleanup(func() { e.ak(t, "snapshot", "delete", "it-dq-snap") })
	e.ok(t, "snapshot", "restore", "it-dq-snap", "--as", "dq-img-gv", "-B", "gvisor")
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", "dq-img-gv") })
	restored := e.info(t, "dq-img-gv")
	if r := e.ok(t, "exec", "dq-img-gv", "--", "cat", "/etc/marker"); r.stdout != "kept\n" {
		t.Errorf("the restored sandbox's /etc/marker: %v", r)
	}
	// A restore is a new sandbox with the default disk: the way to a
	// bigger disk than the source's.
	if restored.DiskMB != 10240 {
		t.Errorf("the restored sandbox's disk: %d MiB, want the default 10240", restored.DiskMB)
	}
	e.ok(t, "sandbox", "remove", "dq-img", "dq-img-gv")
	dir := e.sandboxDir(info.UUID)
	if !waitFor(30*time.Second, func() bool {
		_, err := os.Stat(dir)
		return len(testutil.LoopDevicesUnder(dir)) == 0 && os.IsNotExist(err) && len(mountsOf(e, info.UUID)) == 0
	}) {
		t.Errorf("after removal: loop devices %v, mounts %v", testutil.LoopDevicesUnder(dir), mountsOf(e, info.UUID))
	}
}

// TestDiskQuotaPool: a warm pool's sandboxes have the pool's disk size, and
// only a request of that size is served from it (a disk does not shrink in
// place, so the size is part of the pool's key).
func TestDiskQuotaPool(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	startServe(t, e, "--pool", "backend=container,image=host,disk_mb=96=1")
	var p api.PoolInfo
	if !waitFor(60*time.Second, func() bool {
		for _, q := range e.pools(t) {
			if q.DiskMB == 96 {
				p = q
			}
		}
		return p.Ready == 1
	}) {
		t.Fatalf("the pool of 96 MiB disks did not fill: %+v", e.pools(t))
	}
	info := e.create(t, "dq-pool", "--disk-mb", "96")
	cold := e.create(t, "dq-cold")
	for _, q := range e.pools(t) {
		if q.DiskMB == 96 && q.Claimed != 1 {
			t.Errorf("claims from the 96 MiB pool: %d, want 1 (%+v)", q.Claimed, q)
		}
	}
	if info.DiskMB != 96 || info.Disk == nil || info.Disk.SizeMB > 96 || info.Disk.SizeMB < 48 {
		t.Errorf("the claimed sandbox's disk: %d %+v", info.DiskMB, info.Disk)
	}
	if cold.DiskMB != 10240 || cold.Disk == nil || cold.Disk.SizeMB < 9000 {
		t.Errorf("a default sandbox's disk: %d %+v", cold.DiskMB, cold.Disk)
	}
	r := e.ak(t, "exec", "dq-pool", "--", "dd", "if=/dev/zero", "of=/root/fill", "bs=1M", "count=200")
	if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") {
		t.Errorf("filling the claimed sandbox's 96 MiB disk: %v", r)
	}
}

// hostFreeMB is the free space of the filesystem holding dir.
func hostFreeMB(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize >> 20
}

// hostUsedMB is the host disk space the files under dir take (allocated
// blocks: the disk images are sparse), not counting what is mounted below
// dir (the disk's own files are in its image).
func hostUsedMB(t *testing.T, dir string) int64 {
	t.Helper()
	var top syscall.Stat_t
	if err := syscall.Stat(dir, &top); err != nil {
		t.Fatal(err)
	}
	var blocks int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		switch {
		case !ok:
		case st.Dev != top.Dev && fi.IsDir():
			return filepath.SkipDir
		case fi.Mode().IsRegular():
			blocks += st.Blocks
		}
		return nil
	})
	return blocks * 512 >> 20
}

// mountsOf lists the home's mounts that belong to the sandbox with uuid.
func mountsOf(e *env, uuid string) []string {
	var out []string
	for _, m := range e.h.Mounts() {
		if strings.Contains(m, strings.ReplaceAll(uuid, "-", "")) || strings.Contains(m, uuid) {
			out = append(out, m)
		}
	}
	return out
}

// tableRow returns the first line of out that starts with name.
func tableRow(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}
