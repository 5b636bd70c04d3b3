package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/mountinfo"
)

// teardown removes every sandbox of the home through the API, stops the
// daemon, and then looks for what should be gone: processes of this home,
// runc containers, mounts, cgroups. It returns each leftover it found (and
// removes it by force, so one broken run does not poison the host).
func (e *env) teardown() []string {
	var problems []string
	entries, _ := os.ReadDir(filepath.Join(e.home, "sandboxes"))
	for _, d := range entries {
		e.remember(dashedUUID(d.Name()))
	}

	if socketAnswers(e.socket()) {
		c, err := clientFor(e.socket())
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			list, err := c.ListSandboxes(ctx)
			if err != nil {
				problems = append(problems, fmt.Sprintf("listing sandboxes: %v", err))
			}
			for _, sb := range list {
				e.remember(sb.UUID)
				if err := c.RemoveSandbox(ctx, sb.Name); err != nil {
					problems = append(problems, fmt.Sprintf("removing sandbox %s: %v", sb.Name, err))
				}
			}
			cancel()
		}
	}
	if pid, err := e.daemonPID(); err == nil && alive(pid) {
		syscall.Kill(pid, syscall.SIGTERM)
		if !waitFor(15*time.Second, func() bool { return !alive(pid) }) {
			problems = append(problems, fmt.Sprintf("the daemon (pid %d) did not exit within 15s of SIGTERM", pid))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}

	// Supervisors exit once their sandbox is removed.
	var procs []int
	waitFor(10*time.Second, func() bool { procs = e.processes(); return len(procs) == 0 })
	for _, pid := range procs {
		problems = append(problems, fmt.Sprintf("process %d (%s) of this home still runs", pid, cmdline(pid)))
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if ids := e.runcContainers(); len(ids) > 0 {
		problems = append(problems, fmt.Sprintf("runc --root %s list: %v", e.runcRoot(), ids))
		for _, id := range ids {
			exec.Command("runc", "--root", e.runcRoot(), "delete", "--force", id).Run()
		}
	}
	if ms := e.mounts(); len(ms) > 0 {
		problems = append(problems, fmt.Sprintf("mounts left: %v", ms))
		for _, m := range ms {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	if cg := e.cgroups(); len(cg) > 0 {
		problems = append(problems, fmt.Sprintf("cgroups left: %v", cg))
		for _, d := range cg {
			os.Remove(d)
		}
	}
	return problems
}

// removeHome deletes the home directory unless something is still mounted
// under it (RemoveAll would then walk into the mount).
func (e *env) removeHome() {
	if ms := e.mounts(); len(ms) > 0 {
		fmt.Fprintf(os.Stderr, "integration: NOT removing %s: still mounted: %v\n", e.home, ms)
		return
	}
	os.RemoveAll(e.home)
}

// processes lists live processes whose environment names this home: the
// daemon and the supervisors.
func (e *env) processes() []int {
	want := []byte("AGENTKERNEL_HOME=" + e.home + "\x00")
	dirs, _ := os.ReadDir("/proc")
	var out []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ"))
		if err != nil || !bytes.Contains(append([]byte{0}, b...), append([]byte{0}, want...)) {
			continue
		}
		if alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// runcContainers lists the containers in this home's runc state root.
func (e *env) runcContainers() []string {
	if _, err := os.Stat(e.runcRoot()); err != nil {
		return nil
	}
	out, err := exec.Command("runc", "--root", e.runcRoot(), "list", "-q").Output()
	if err != nil {
		return []string{fmt.Sprintf("(runc list failed: %v)", err)}
	}
	return strings.Fields(string(out))
}

// mounts lists mount points under the home or named after one of its
// sandboxes (the rootfs mount points may live elsewhere), deepest first.
func (e *env) mounts() []string {
	ms, err := mountinfo.Self()
	if err != nil {
		return nil
	}
	e.mu.Lock()
	uuids := make([]string, 0, len(e.uuids))
	for u := range e.uuids {
		uuids = append(uuids, u)
	}
	e.mu.Unlock()
	var out []string
	for _, m := range ms {
		mp := m.Target
		hit := mp == e.home || strings.HasPrefix(mp, e.home+"/")
		for _, u := range uuids {
			hit = hit || strings.Contains(mp, u) || strings.Contains(mp, strings.ReplaceAll(u, "-", ""))
		}
		if hit {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// cgroups lists cgroup directories named after one of the home's sandboxes.
func (e *env) cgroups() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for u := range e.uuids {
		for _, pat := range []string{"/sys/fs/cgroup/*/agentkernel/" + u, "/sys/fs/cgroup/agentkernel/" + u} {
			m, _ := filepath.Glob(pat)
			out = append(out, m...)
		}
	}
	return out
}
