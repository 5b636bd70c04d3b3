// Package akhome is an agentkernel home for tests that drive the real
// binary (test/integration, test/soak): its paths, and the leak check that
// runs when a test is done with it. The check removes every sandbox through
// the API, stops the daemon, and then looks for what must be gone with
// them: processes of the home (daemon, supervisors, runc, the sandboxes'
// own processes), runc containers, mounts, cgroups, network namespaces,
// files of the sandboxes and store rows. Each leftover is reported and then
// removed by force, so one broken run does not poison the host.
//
// Only things that can be attributed to this home are looked at (its
// directory, the UUIDs of sandboxes it saw), never a before/after diff of
// the whole machine: other tests may run on the same host at the same time.
package akhome

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/loopfs"
	"github.com/agentkernel/agentkernel/internal/mountinfo"
	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/internal/testutil"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// RootfsDir is where the container backend puts each sandbox's root
// filesystem mount point (container.DefaultRootfsDir); a gateway sandbox's
// /sys is mounted next to it, in ../sysfs.
const RootfsDir = "/run/agentkernel/rootfs"

// Home is one agentkernel home directory. It remembers the UUID of every
// sandbox it was told of (or found), and the network namespaces of the
// running ones, to look for their leftovers at the end.
type Home struct {
	Dir string

	mu     sync.Mutex
	uuids  map[string]bool
	netns  map[uint64]string // inode -> the sandbox UUID it belonged to
	events int               // store events left, counted by the last Teardown
}

// New makes a fresh home directory under /tmp, short enough for the Unix
// socket paths under it (108 bytes at most); prefix names it.
func New(prefix string) (*Home, error) {
	dir, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		return nil, err
	}
	return &Home{Dir: dir, uuids: map[string]bool{}, netns: map[uint64]string{}}, nil
}

// At makes a Home of an existing, empty directory (a test that needs the
// home on a filesystem of its own, such as a small loop mount, makes the
// directory itself).
func At(dir string) (*Home, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	return &Home{Dir: dir, uuids: map[string]bool{}, netns: map[uint64]string{}}, nil
}

// Layout is the home's paths.Layout.
func (h *Home) Layout() paths.Layout { return paths.Layout{Home: h.Dir} }

// Socket is the daemon's Unix socket.
func (h *Home) Socket() string { return h.Layout().Socket() }

// PIDFile holds the daemon's pid.
func (h *Home) PIDFile() string { return h.Layout().PIDFile() }

// RuncRoot is the home's runc state root.
func (h *Home) RuncRoot() string { return h.Layout().RuncRoot() }

// SandboxDir is the state directory of the sandbox with this UUID: its hex
// digits without the dashes.
func (h *Home) SandboxDir(uuid string) string {
	return h.Layout().SandboxDir(strings.ReplaceAll(uuid, "-", ""))
}

// Environ is os.Environ without AGENTKERNEL_* settings, plus this home and
// no default warm pool (AGENTKERNEL_DEFAULT_POOL_SIZE=0): a test daemon
// makes no sandbox it was not asked for, unless the test sets pools.
func (h *Home) Environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AGENTKERNEL_") {
			out = append(out, kv)
		}
	}
	return append(out, "AGENTKERNEL_HOME="+h.Dir, "AGENTKERNEL_DEFAULT_POOL_SIZE=0")
}

// Client returns a pkg/client for the home's daemon (Unix socket).
func (h *Home) Client() (*client.Client, error) {
	return client.New(client.WithBaseURL("unix://" + h.Socket()))
}

// DaemonPID reads the running daemon's pid.
func (h *Home) DaemonPID() (int, error) {
	b, err := os.ReadFile(h.PIDFile())
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Remember adds a sandbox UUID to those whose leftovers are looked for.
func (h *Home) Remember(uuid string) {
	if uuid == "" {
		return
	}
	h.mu.Lock()
	h.uuids[uuid] = true
	h.mu.Unlock()
}

// UUIDs returns the UUIDs remembered so far, sorted.
func (h *Home) UUIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.uuids))
	for u := range h.uuids {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// EventsLeft is how many store events of the home's sandboxes the last
// Teardown found (events outlive their sandbox by design, bounded by
// store.DefaultEventsPerSandbox each).
func (h *Home) EventsLeft() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.events
}

// NoteNamespaces records the network namespace of every running sandbox
// of the home (read from its init's /proc entry), so that Teardown can
// check nothing holds it afterwards. Call it while the sandboxes run;
// Teardown calls it too, before it removes what is left.
func (h *Home) NoteNamespaces() {
	entries, _ := os.ReadDir(h.Layout().SandboxesDir())
	for _, d := range entries {
		uuid := DashedUUID(d.Name())
		h.Remember(uuid)
		pid, err := ReadPID(filepath.Join(h.Layout().SandboxesDir(), d.Name(), "init.pid"))
		if err != nil || !Alive(pid) {
			continue
		}
		if ino, ok := nsInode(fmt.Sprintf("/proc/%d/ns/net", pid)); ok && ino != selfNetns() {
			h.mu.Lock()
			h.netns[ino] = uuid
			h.mu.Unlock()
		}
	}
}

// Teardown removes every sandbox of the home through the API, stops the
// daemon, and returns each leftover it then finds (removing it by force).
func (h *Home) Teardown() []string {
	var problems []string
	h.NoteNamespaces()
	if SocketAnswers(h.Socket()) {
		if c, err := h.Client(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			list, err := c.ListSandboxes(ctx)
			if err != nil {
				problems = append(problems, fmt.Sprintf("listing sandboxes: %v", err))
			}
			for _, sb := range list {
				h.Remember(sb.UUID)
				if err := c.RemoveSandbox(ctx, sb.Name); err != nil {
					problems = append(problems, fmt.Sprintf("removing sandbox %s: %v", sb.Name, err))
				}
			}
			// Warm pools' sandboxes are no caller's: drained, they go
			// before the daemon exits (it waits for removals).
			pools, _ := c.ListPools(ctx)
			for _, p := range pools {
				if _, err := c.SetPool(ctx, api.SetPoolRequest{PoolKey: p.PoolKey}); err != nil {
					problems = append(problems, fmt.Sprintf("draining pool %s: %v", p.PoolKey, err))
				}
			}
			cancel()
		}
	}
	return append(problems, h.StopAndCheck()...)
}

// StopAndCheck stops the daemon (SIGTERM) and returns what of the home's
// sandboxes is left, removing it by force. Unlike Teardown it removes no
// sandbox first: a caller that removed them itself uses it to see that
// the removal left nothing behind.
func (h *Home) StopAndCheck() []string {
	var problems []string
	if pid, err := h.DaemonPID(); err == nil && Alive(pid) {
		syscall.Kill(pid, syscall.SIGTERM)
		if !WaitFor(15*time.Second, func() bool { return !Alive(pid) }) {
			problems = append(problems, fmt.Sprintf("the daemon (pid %d) did not exit within 15s of SIGTERM", pid))
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	// Supervisors exit once their sandbox is removed.
	var procs []int
	WaitFor(10*time.Second, func() bool { procs = h.Processes(); return len(procs) == 0 })
	for _, pid := range procs {
		problems = append(problems, fmt.Sprintf("process %d (%s) of this home still runs", pid, Cmdline(pid)))
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if ids := h.RuncContainers(); len(ids) > 0 {
		problems = append(problems, fmt.Sprintf("runc --root %s list: %v", h.RuncRoot(), ids))
		for _, id := range ids {
			exec.Command("runc", "--root", h.RuncRoot(), "delete", "--force", id).Run()
		}
	}
	if fs := h.RunscState(); len(fs) > 0 {
		problems = append(problems, fmt.Sprintf("runsc state left in %s: %v", h.Layout().RunscRoot(), fs))
	}
	if ms := h.Mounts(); len(ms) > 0 {
		problems = append(problems, fmt.Sprintf("mounts left: %v", ms))
		for _, m := range ms {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	if ls := testutil.LoopDevicesUnder(h.Dir); len(ls) > 0 {
		problems = append(problems, fmt.Sprintf("loop devices left (sandbox disks): %v", ls))
	}
	if cg := h.Cgroups(); len(cg) > 0 {
		problems = append(problems, fmt.Sprintf("cgroups left: %v", cg))
		for _, d := range cg {
			os.Remove(d)
		}
	}
	if ds := loopfs.Devices(h.Dir); len(ds) > 0 {
		// Named volumes are loop-mounted by container and gvisor
		// sandboxes; autoclear devices go with their last mount.
		problems = append(problems, fmt.Sprintf("loop devices left: %v", ds))
	}
	problems = append(problems, h.NamespacesHeld()...)
	if fs := h.SandboxFiles(); len(fs) > 0 {
		problems = append(problems, fmt.Sprintf("sandbox files left: %v", fs))
	}
	problems = append(problems, h.StoreRows()...)
	return problems
}

// RemoveHome deletes the home directory unless something is still mounted
// under it (RemoveAll would then walk into the mount), and the sandboxes'
// directories under RootfsDir and its sysfs sibling.
func (h *Home) RemoveHome() {
	if ms := h.Mounts(); len(ms) > 0 {
		fmt.Fprintf(os.Stderr, "akhome: NOT removing %s: still mounted: %v\n", h.Dir, ms)
		return
	}
	for _, u := range h.UUIDs() {
		os.Remove(filepath.Join(RootfsDir, u))
		os.Remove(filepath.Join(filepath.Dir(RootfsDir), "sysfs", u))
	}
	os.RemoveAll(h.Dir)
}

// Processes lists live processes of this home: those whose environment
// names it (the daemon, the supervisors, runc), and those in one of its
// sandboxes' cgroups (the agent and what it started).
func (h *Home) Processes() []int {
	want := []byte("\x00AGENTKERNEL_HOME=" + h.Dir + "\x00")
	uuids := h.UUIDs()
	dirs, _ := os.ReadDir("/proc")
	var out []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		hit := false
		if b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "environ")); err == nil {
			hit = bytes.Contains(append(append([]byte{0}, b...), 0), want)
		}
		if !hit && len(uuids) > 0 {
			if cg, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cgroup")); err == nil {
				for _, u := range uuids {
					if bytes.Contains(cg, []byte("/agentkernel/"+u)) {
						hit = true
						break
					}
				}
			}
		}
		if hit && Alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// RuncContainers lists the containers in this home's runc state root.
func (h *Home) RuncContainers() []string {
	if _, err := os.Stat(h.RuncRoot()); err != nil {
		return nil
	}
	out, err := exec.Command("runc", "--root", h.RuncRoot(), "list", "-q").Output()
	if err != nil {
		return []string{fmt.Sprintf("(runc list failed: %v)", err)}
	}
	return strings.Fields(string(out))
}

// RunscState lists the files of the home's runsc state root (gvisor
// sandboxes) other than the backend's cached platform probe: a sandbox's
// <id>_sandbox:<id>.state and .lock, or anything runsc left there.
func (h *Home) RunscState() []string {
	ents, err := os.ReadDir(h.Layout().RunscRoot())
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.Name() != "platform.json" {
			out = append(out, e.Name())
		}
	}
	return out
}

// Mounts lists mount points under the home or named after one of its
// sandboxes (the rootfs mount points live elsewhere), deepest first, and
// nsfs mounts of the sandboxes' network namespaces.
func (h *Home) Mounts() []string {
	ms, err := mountinfo.Self()
	if err != nil {
		return nil
	}
	uuids := h.UUIDs()
	h.mu.Lock()
	var nsRoots []string
	for ino := range h.netns {
		nsRoots = append(nsRoots, fmt.Sprintf("net:[%d]", ino))
	}
	h.mu.Unlock()
	var out []string
	for _, m := range ms {
		mp := m.Target
		hit := mp == h.Dir || strings.HasPrefix(mp, h.Dir+"/")
		for _, u := range uuids {
			hit = hit || strings.Contains(mp, u) || strings.Contains(mp, strings.ReplaceAll(u, "-", ""))
		}
		for _, r := range nsRoots {
			hit = hit || (m.FSType == "nsfs" && m.Root == r)
		}
		if hit {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// Cgroups lists cgroup directories named after one of the home's sandboxes.
func (h *Home) Cgroups() []string {
	var out []string
	for _, u := range h.UUIDs() {
		for _, pat := range []string{"/sys/fs/cgroup/*/agentkernel/" + u, "/sys/fs/cgroup/agentkernel/" + u} {
			m, _ := filepath.Glob(pat)
			out = append(out, m...)
		}
	}
	return out
}

// NamespacesHeld reports each noted sandbox network namespace (see
// NoteNamespaces) that some process still holds, as its namespace or an
// open file. A namespace nothing holds is gone, and its tap with it.
func (h *Home) NamespacesHeld() []string {
	h.mu.Lock()
	want := make(map[uint64]string, len(h.netns))
	for k, v := range h.netns {
		want[k] = v
	}
	h.mu.Unlock()
	if len(want) == 0 {
		return nil
	}
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		links := []string{filepath.Join("/proc", d.Name(), "ns", "net")}
		fds, _ := os.ReadDir(filepath.Join("/proc", d.Name(), "fd"))
		for _, fd := range fds {
			links = append(links, filepath.Join("/proc", d.Name(), "fd", fd.Name()))
		}
		for _, l := range links {
			if ino, ok := nsInode(l); ok {
				if u, hit := want[ino]; hit {
					out = append(out, fmt.Sprintf("network namespace of sandbox %s held by process %d (%s) at %s", u, pid, Cmdline(pid), l))
				}
			}
		}
	}
	return out
}

// SandboxFiles lists what is left of the home's sandboxes on disk: entries
// of the home's sandboxes directory, and their root filesystem and sysfs
// mount points.
func (h *Home) SandboxFiles() []string {
	var out []string
	entries, _ := os.ReadDir(h.Layout().SandboxesDir())
	for _, d := range entries {
		out = append(out, filepath.Join(h.Layout().SandboxesDir(), d.Name()))
	}
	for _, u := range h.UUIDs() {
		for _, p := range []string{filepath.Join(RootfsDir, u), filepath.Join(filepath.Dir(RootfsDir), "sysfs", u)} {
			if _, err := os.Lstat(p); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// StoreRows opens the home's database (the daemon must be stopped) and
// reports sandbox rows left. It counts the events of the home's sandboxes
// (EventsLeft), which stay by design, and reports a sandbox with more than
// store.DefaultEventsPerSandbox of them.
func (h *Home) StoreRows() []string {
	p := h.Layout().Database()
	if _, err := os.Stat(p); err != nil {
		return nil
	}
	s, err := store.Open(p)
	if err != nil {
		return []string{fmt.Sprintf("opening the store: %v", err)}
	}
	defer s.Close()
	ctx := context.Background()
	var out []string
	rows, err := s.ListSandboxes(ctx)
	if err != nil {
		return []string{fmt.Sprintf("listing the store's sandboxes: %v", err)}
	}
	for _, r := range rows {
		out = append(out, fmt.Sprintf("store row of sandbox %s (%s, %s)", r.Name, r.UUID, r.Status))
	}
	n := 0
	for _, u := range h.UUIDs() {
		evs, err := s.ListEvents(ctx, u, 0)
		if err != nil {
			out = append(out, fmt.Sprintf("events of %s: %v", u, err))
			continue
		}
		if len(evs) > store.DefaultEventsPerSandbox {
			out = append(out, fmt.Sprintf("sandbox %s has %d events, over the bound of %d", u, len(evs), store.DefaultEventsPerSandbox))
		}
		n += len(evs)
	}
	h.mu.Lock()
	h.events = n
	h.mu.Unlock()
	return out
}

// DashedUUID turns a state directory's name back into the UUID (the runc
// container id and the cgroup name); other names come back unchanged.
func DashedUUID(s string) string {
	if len(s) != 32 || strings.Contains(s, "-") {
		return s
	}
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// Alive reports whether pid is a live (not zombie) process.
func Alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// WaitFor polls cond every 50ms until it holds or d passes.
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Cmdline is pid's command line, spaces between the arguments.
func Cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// ReadPID reads a pid file.
func ReadPID(p string) (int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// SocketAnswers reports whether something accepts connections on path.
func SocketAnswers(path string) bool {
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// nsInode returns the inode of the namespace a /proc link names
// ("net:[4026531993]"), and whether it names a network namespace.
func nsInode(link string) (uint64, bool) {
	s, err := os.Readlink(link)
	if err != nil || !strings.HasPrefix(s, "net:[") || !strings.HasSuffix(s, "]") {
		return 0, false
	}
	n, err := strconv.ParseUint(s[len("net:["):len(s)-1], 10, 64)
	return n, err == nil
}

// selfNetns is the inode of the calling thread's network namespace.
func selfNetns() uint64 {
	n, _ := nsInode("/proc/thread-self/ns/net")
	return n
}

// DumpLogs writes the daemon's log and every sandbox's supervisor and
// console logs to w, each cut to its last max bytes.
func (h *Home) DumpLogs(w io.Writer, max int) {
	show := func(p string) {
		b, err := os.ReadFile(p)
		if err != nil {
			return
		}
		if len(b) > max {
			b = append([]byte("…(truncated)…\n"), b[len(b)-max:]...)
		}
		fmt.Fprintf(w, "===== %s =====\n%s\n", p, b)
	}
	show(filepath.Join(h.Dir, "daemon.log"))
	dirs, _ := filepath.Glob(filepath.Join(h.Layout().SandboxesDir(), "*"))
	for _, d := range dirs {
		show(filepath.Join(d, "supervisor.log"))
		show(filepath.Join(d, "console.log"))
	}
}
