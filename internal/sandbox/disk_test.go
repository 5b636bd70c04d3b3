package sandbox

import (
	"errors"
	"testing"

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

func TestCheckDiskFits(t *testing.T) {
	dir := t.TempDir()
	if err := checkDiskFits(dir, MinDiskMB); err != nil {
		t.Errorf("a small disk: %v", err)
	}
	if err := checkDiskFits(dir, 1<<30); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("a disk larger than the filesystem: %v", err)
	}
}
