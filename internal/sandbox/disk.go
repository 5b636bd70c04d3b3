package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Every sandbox writes to a disk of its own of Resources.DiskMB (the
// container backends loop-mount an ext4 image for its upper layer, /root,
// /home and /tmp; a microVM's writable disk is that size): a full disk
// fails the sandbox's writes with ENOSPC and nothing else. Info and list
// ask each running sandbox's agent how full it is, so that a full disk is
// plain to see ("disk full"), and the agent says so in the exit status of
// a command that failed on a full disk.

// diskQueryTimeout bounds asking one agent about its disk: a sandbox too
// busy to answer is shown without its disk's use.
const diskQueryTimeout = 500 * time.Millisecond

// diskUsage converts the agent's answer.
func diskUsage(d agentproto.DiskStat) *api.DiskUsage {
	used := uint64(0)
	if d.Bytes > d.Avail {
		used = d.Bytes - d.Avail
	}
	return &api.DiskUsage{SizeMB: int64(d.Bytes >> 20), UsedMB: int64(used >> 20), AvailMB: int64(d.Avail >> 20), Full: d.Full(), ReadOnly: d.ReadOnly}
}

// addDiskUsage fills in Disk for the running sandboxes among infos, asking
// their agents in parallel.
func (m *Manager) addDiskUsage(ctx context.Context, infos []api.SandboxInfo) {
	var wg sync.WaitGroup
	for i := range infos {
		if infos[i].Status != api.StatusRunning || infos[i].DiskMB == 0 {
			// Not running, or made before disks had a size: its /tmp
			// may be on the host's filesystem, whose use is not its.
			continue
		}
		l := m.getLive(infos[i].UUID)
		if l == nil {
			continue
		}
		wg.Add(1)
		go func(info *api.SandboxInfo) {
			defer wg.Done()
			qctx, cancel := context.WithTimeout(ctx, diskQueryTimeout)
			defer cancel()
			c, err := l.agentClient(qctx)
			if err != nil {
				return
			}
			d, err := c.Disk(qctx)
			if err != nil {
				if !errors.Is(err, errdefs.ErrNotImplemented) && qctx.Err() == nil {
					m.log.Debug("asking a sandbox about its disk", "sandbox", info.Name, "err", err)
				}
				return
			}
			info.Disk = diskUsage(d)
		}(&infos[i])
	}
	wg.Wait()
}

// fitDisk checks a disk of diskMB against the filesystem that would hold
// it (dir's): sparse, a larger one could be promised, but never filled. A
// size the caller asked for is refused; the default is cut to the
// filesystem's size, so a daemon whose home is on a small filesystem still
// starts and creates sandboxes.
func fitDisk(dir string, diskMB int, asked bool) (int, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return diskMB, nil // the directory is made later; the backend reports
	}
	totalMB := st.Blocks * uint64(st.Bsize) >> 20
	switch {
	case uint64(diskMB) <= totalMB:
		return diskMB, nil
	case asked:
		return 0, fmt.Errorf("%w: disk_mb %d is more than the %d MB filesystem of this daemon's home", errdefs.ErrInvalidArgument, diskMB, totalMB)
	case totalMB < MinDiskMB:
		return 0, fmt.Errorf("%w: the filesystem of this daemon's home is %d MB, less than the %d MB of the smallest sandbox disk",
			errdefs.ErrFailedPrecondition, totalMB, MinDiskMB)
	}
	return int(totalMB), nil
}
