package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agentproto"
)

// A process killed by the sandbox's own limits used to end with a bare
// exit 137 (or a shell's "fork failed"): nothing said that the memory or
// process limit was the cause. The agent reads the counters the kernel
// keeps for the sandbox's cgroup (or, in a microVM, for the whole guest)
// before and after each process and says so in its exit status. Processes
// running at the same time share the counters, so the message says the
// sandbox hit its limit while the process ran, which is what is known.

// limitCounters are the kernel's counts of limit events for this sandbox.
type limitCounters struct {
	oomKills int64 // processes the OOM killer killed
	pidsMax  int64 // forks refused at the pids limit
	ok       bool  // the counters could be read
	// disk is the writable disk at the time (read after the process only).
	disk agentproto.DiskStat
}

// cgroup counter files: cgroup v2, then v1 (as runc mounts it), then the
// guest-wide count of a microVM, which is the sandbox itself.
var (
	oomFiles  = []string{"/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"}
	pidsFiles = []string{"/sys/fs/cgroup/pids.events", "/sys/fs/cgroup/pids/pids.events"}
	vmstat    = "/proc/vmstat"
	// diskPath is on the sandbox's writable disk on every backend (the
	// container backend binds it from the disk, a microVM's guestinit
	// from its writable disk).
	diskPath = "/tmp"
)

// diskStat reads the writable disk's size and free space. With probe it
// also finds out whether the disk still takes writes: ext4 that made
// itself read-only after a failed write-back is not always flagged so by
// statfs, so it tries to make an unnamed file.
func diskStat(probe bool) (agentproto.DiskStat, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(diskPath, &st); err != nil {
		return agentproto.DiskStat{}, fmt.Errorf("statfs %s: %w", diskPath, err)
	}
	bs := uint64(st.Bsize)
	d := agentproto.DiskStat{Bytes: st.Blocks * bs, Avail: st.Bavail * bs, Files: st.Files, FilesFree: st.Ffree,
		ReadOnly: st.Flags&unix.ST_RDONLY != 0}
	if probe && !d.ReadOnly {
		d.ReadOnly = refusesWrites(diskPath)
	}
	return d, nil
}

// refusesWrites reports whether dir's filesystem refuses a new file as
// read-only.
func refusesWrites(dir string) bool {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err == nil {
		unix.Close(fd)
		return false
	}
	return errors.Is(err, unix.EROFS)
}

// readLimitCountersAfter is readLimitCounters with the disk's state
// (probed for writes after a process that failed).
func readLimitCountersAfter(failed bool) limitCounters {
	c := readLimitCounters()
	c.disk, _ = diskStat(failed)
	return c
}

func readLimitCounters() limitCounters {
	var c limitCounters
	oom, ok := firstCounter(oomFiles, "oom_kill")
	if !ok && os.Getpid() == 1 {
		// No memory cgroup in sight: a microVM's agent, whose guest is
		// the sandbox.
		oom, ok = firstCounter([]string{vmstat}, "oom_kill")
	}
	c.oomKills, c.ok = oom, ok
	c.pidsMax, _ = firstCounter(pidsFiles, "max")
	return c
}

// firstCounter returns the value of key in the first of files that holds
// it ("key N" lines).
func firstCounter(files []string, key string) (int64, bool) {
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), " ")
			if ok && k == key {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				fh.Close()
				return n, err == nil
			}
		}
		fh.Close()
	}
	return 0, false
}

// explainLimits adds to st why the process may have ended when the
// sandbox hit a limit while it ran.
func explainLimits(st agentproto.ExitStatus, before, after limitCounters) agentproto.ExitStatus {
	if st.Error != "" || st.Code == 0 {
		return st
	}
	switch {
	case before.ok && after.oomKills > before.oomKills && st.Signal == int(syscall.SIGKILL):
		st.Error = "killed by the out-of-memory killer: the sandbox reached its memory limit"
	case after.pidsMax > before.pidsMax:
		st.Error = fmt.Sprintf("the sandbox reached its process limit while this ran (%d forks refused)", after.pidsMax-before.pidsMax)
	case after.disk.ReadOnly:
		st.Error = agentproto.DiskReadOnly
	case after.disk.Full():
		st.Error = fmt.Sprintf("the sandbox's disk is full (%s): writes fail with \"No space left on device\"; delete files or create the sandbox with a larger --disk-mb", sizeMiB(after.disk.Bytes))
	}
	return st
}

// sizeMiB renders a disk size for a message.
func sizeMiB(b uint64) string {
	if b >= 10<<30 {
		return fmt.Sprintf("%d GiB", b>>30)
	}
	return fmt.Sprintf("%d MiB", b>>20)
}
