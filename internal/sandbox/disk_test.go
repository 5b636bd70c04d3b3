package sandbox

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestDiskUsage(t *testing.T) {
	d := diskUsage(agentproto.DiskStat{Bytes: 120 << 20, Avail: 20 << 20, Files: 10, FilesFree: 5})
	if d.SizeMB != 120 || d.UsedMB != 100 || d.AvailMB != 20 || d.Full {
		t.Errorf("roomy: %+v", d)
	}
	if d := diskUsage(agentproto.DiskStat{Bytes: 120 << 20, Avail: 512 << 10, Files: 10, FilesFree: 5}); !d.Full || d.AvailMB != 0 {
		t.Errorf("under 1 MiB free: %+v", d)
	}
	if d := diskUsage(agentproto.DiskStat{Bytes: 120 << 20, Avail: 20 << 20, Files: 10}); !d.Full {
		t.Errorf("no inode free: %+v", d)
	}
	// Reserved blocks can make Avail exceed Bytes-used; never negative.
	if d := diskUsage(agentproto.DiskStat{Bytes: 1 << 20, Avail: 2 << 20}); d.UsedMB != 0 {
		t.Errorf("avail above size: %+v", d)
	}
}

// TestFitDisk: a disk that fits is kept; one larger than the filesystem
// is refused when asked for and cut to the filesystem's size when it is
// the default.
func TestFitDisk(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	totalMB := int(st.Blocks * uint64(st.Bsize) >> 20)
	if got, err := fitDisk(dir, MinDiskMB, true); err != nil || got != MinDiskMB {
		t.Errorf("a small disk: %d, %v", got, err)
	}
	if _, err := fitDisk(dir, 1<<30, true); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("a disk asked for, larger than the filesystem: %v", err)
	}
	if got, err := fitDisk(dir, 1<<30, false); err != nil || got != totalMB {
		t.Errorf("the default, larger than the %d MB filesystem: %d, %v", totalMB, got, err)
	}
}
