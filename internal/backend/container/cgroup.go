package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/mountinfo"
)

// cgroupMount is one mounted cgroup hierarchy.
type cgroupMount struct {
	dir     string   // where it is mounted
	root    string   // the cgroup mounted there ("/" outside a cgroup namespace)
	v2      bool     // cgroup2
	options []string // super options: the v1 controllers
}

// cgroupMounts lists the cgroup hierarchies mounted in this mount namespace.
func cgroupMounts() ([]cgroupMount, error) {
	ms, err := mountinfo.Self()
	if err != nil {
		return nil, err
	}
	var out []cgroupMount
	for _, m := range ms {
		if m.FSType != "cgroup" && m.FSType != "cgroup2" {
			continue
		}
		out = append(out, cgroupMount{dir: m.Target, root: m.Root, v2: m.FSType == "cgroup2", options: strings.Split(m.SuperOptions, ",")})
	}
	return out, nil
}

// cgroupDirs returns the directories that cgroupsPath (absolute, as in the
// runtime spec) occupies in every mounted hierarchy.
func cgroupDirs(cgroupsPath string) ([]string, error) {
	ms, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		rel := cgroupsPath
		if m.root != "/" {
			r, ok := strings.CutPrefix(cgroupsPath, m.root+"/")
			if !ok {
				continue
			}
			rel = "/" + r
		}
		out = append(out, filepath.Join(m.dir, rel))
	}
	return out, nil
}

// removeCgroup kills whatever still runs in cgroupsPath and removes its
// directories (children first) from every hierarchy. Missing directories
// are fine; it gives up with an error when ctx ends.
func removeCgroup(ctx context.Context, cgroupsPath string) error {
	dirs, err := cgroupDirs(cgroupsPath)
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dirs {
		if err := removeCgroupDir(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeCgroupDir(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupDir(ctx, filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	for {
		killProcs(dir)
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("removing cgroup %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("removing cgroup %s: still busy: %w", dir, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// killProcs sends SIGKILL to every process listed in dir's cgroup.procs.
func killProcs(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}
