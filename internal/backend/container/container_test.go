package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

var capBits = map[string]int{
	"CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE, "CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE,
	"CAP_FOWNER": unix.CAP_FOWNER, "CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL,
	"CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE, "CAP_SETGID": unix.CAP_SETGID, "CAP_SETPCAP": unix.CAP_SETPCAP,
	"CAP_SETUID": unix.CAP_SETUID, "CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT,
}

// statusField returns a field of /proc/self/status as seen by a shell in
// the sandbox.
func statusField(t *testing.T, inst backend.Instance, field string) string {
	t.Helper()
	out := sh(t, inst, "grep '^"+field+":' /proc/self/status")
	return strings.TrimSpace(strings.TrimPrefix(out, field+":"))
}

// TestHostSandbox starts a sandbox from the host image and checks every
// hardening setting from inside, and the limits from outside.
func TestHostSandbox(t *testing.T) {
	e := newEnv(t)
	s := e.spec(t)
	s.Resources = backend.Resources{MemoryMB: 256, PidsLimit: 200, VCPUs: 2}
	s.Env = []string{"GREETING=hi"}
	inst := e.start(t, s)

	if got := sh(t, inst, "id -u; id -g"); got != "0\n0" {
		t.Errorf("id = %q, want root", got)
	}
	if f := strings.Fields(sh(t, inst, "cat /proc/self/uid_map")); strings.Join(f, " ") != "0 100000 65536" {
		t.Errorf("uid_map = %v", f)
	}
	if f := strings.Fields(sh(t, inst, "cat /proc/self/gid_map")); strings.Join(f, " ") != "0 100000 65536" {
		t.Errorf("gid_map = %v", f)
	}
	var want uint64
	for _, c := range oci.DefaultCapabilities() {
		want |= 1 << capBits[c]
	}
	for _, f := range []string{"CapEff", "CapPrm", "CapBnd"} {
		got, err := strconv.ParseUint(statusField(t, inst, f), 16, 64)
		if err != nil || got != want {
			t.Errorf("%s = %x, want %x (%v)", f, got, want, err)
		}
	}
	for _, f := range []string{"CapAmb", "CapInh"} {
		if got := statusField(t, inst, f); got != "0000000000000000" {
			t.Errorf("%s = %s, want 0", f, got)
		}
	}
	if got := statusField(t, inst, "NoNewPrivs"); got != "1" {
		t.Errorf("NoNewPrivs = %s", got)
	}
	if got := statusField(t, inst, "Seccomp"); got != "2" {
		t.Errorf("Seccomp = %s, want 2 (filter)", got)
	}
	// Blocked by seccomp (and by the missing CAP_SYS_ADMIN): new user
	// namespaces, mounts, keyrings.
	for _, cmd := range []string{"unshare -U true", "unshare -m true", "mount -t tmpfs none /tmp"} {
		r := run(t, inst, "/bin/sh", "-c", cmd)
		if r.Code == 0 || !(strings.Contains(r.Stderr, "not permitted") || strings.Contains(r.Stderr, "permission denied")) {
			t.Errorf("%q: exit %d, %q; want EPERM", cmd, r.Code, r.Stderr)
		}
	}
	// Masked and read-only /proc.
	// Masked files read as empty (those this kernel has at all).
	for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if got := sh(t, inst, "wc -c < "+p); got != "0" {
			t.Errorf("%s not masked: %s bytes", p, got)
		}
	}
	if got := sh(t, inst, "ls -A /sys/firmware | wc -l"); got != "0" {
		t.Errorf("/sys/firmware not masked: %s entries", got)
	}
	if r := run(t, inst, "/bin/sh", "-c", "echo 1 > /proc/sys/kernel/hostname"); r.Code == 0 {
		t.Error("/proc/sys writable")
	}
	if r := run(t, inst, "/bin/sh", "-c", "echo 1 > /proc/sysrq-trigger"); r.Code == 0 {
		t.Error("/proc/sysrq-trigger writable")
	}
	if r := run(t, inst, "/bin/sh", "-c", "touch /sys/kernel/x"); r.Code == 0 {
		t.Error("/sys writable")
	}
	// Limits, seen from inside the cgroup namespace...
	mem := sh(t, inst, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max")
	if mem != strconv.Itoa(256<<20) {
		t.Errorf("memory limit inside = %q", mem)
	}
	pids := sh(t, inst, "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max")
	if pids != "200" {
		t.Errorf("pids limit inside = %q", pids)
	}
	// ...and from the host.
	checkHostCgroup(t, e, s, 256<<20, 200, 200000)
	// Only lo, and it is the only interface.
	if got := sh(t, inst, "ls /sys/class/net"); got != "lo" {
		t.Errorf("interfaces = %q, want lo", got)
	}
	// Read-only host view, scrubbed /etc, fresh writable places.
	for _, p := range []string{"/usr/x", "/etc/x", "/bin/x", "/x"} {
		if r := run(t, inst, "/bin/sh", "-c", "touch "+p); r.Code == 0 {
			t.Errorf("%s is writable", p)
		}
	}
	if r := run(t, inst, "/bin/sh", "-c", "test -e /etc/shadow || test -e /etc/gshadow"); r.Code == 0 {
		t.Error("/etc/shadow or /etc/gshadow visible")
	}
	sh(t, inst, "test -s /etc/passwd && touch /tmp/x /root/x /home/x /var/tmp/x /run/x")
	if got := sh(t, inst, "stat -c %a /tmp /var/tmp /root"); got != "1777\n1777\n700" {
		t.Errorf("modes of /tmp /var/tmp /root = %q", got)
	}
	if got := sh(t, inst, "hostname; echo $GREETING"); got != "test\nhi" {
		t.Errorf("hostname and env = %q", got)
	}
	allowed := map[string]bool{"core": true, "fd": true, "full": true, "mqueue": true, "null": true, "ptmx": true, "pts": true,
		"random": true, "shm": true, "stderr": true, "stdin": true, "stdout": true, "tty": true, "urandom": true, "zero": true}
	for _, d := range strings.Fields(sh(t, inst, "ls -A /dev")) {
		if !allowed[d] {
			t.Errorf("unexpected /dev/%s", d)
		}
	}
}

// checkHostCgroup reads the sandbox's limits from the host's cgroup files.
func checkHostCgroup(t *testing.T, e *env, s *backend.Spec, mem, pids, quota int) {
	t.Helper()
	dirs, err := cgroupDirs(oci.CgroupsPath(e.opts.CgroupParent, s.ID))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"memory.limit_in_bytes": strconv.Itoa(mem), "memory.memsw.limit_in_bytes": strconv.Itoa(mem),
		"memory.max": strconv.Itoa(mem), "memory.swap.max": "0",
		"pids.max": strconv.Itoa(pids), "cpu.cfs_quota_us": strconv.Itoa(quota), "cpu.max": fmt.Sprintf("%d 100000", quota),
	}
	seen := map[string]bool{}
	for _, d := range dirs {
		for f, v := range want {
			b, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				continue
			}
			seen[strings.SplitN(f, ".", 2)[0]] = true
			if got := strings.TrimSpace(string(b)); got != v {
				t.Errorf("%s/%s = %s, want %s", d, f, got, v)
			}
		}
	}
	for _, c := range []string{"memory", "pids", "cpu"} {
		if !seen[c] {
			t.Errorf("no %s limit found on the host in %v", c, dirs)
		}
	}
}

// TestStrictSeccomp shows the strict profile is really loaded: setarch
// linux32 (personality PER_LINUX32) passes the default profile and fails
// under the strict one.
func TestStrictSeccomp(t *testing.T) {
	e := newEnv(t)
	for _, profile := range []string{"default", "strict"} {
		s := e.spec(t)
		s.Security.Seccomp = profile
		inst := e.start(t, s)
		r := run(t, inst, "setarch", "linux32", "true")
		if ok := r.Code == 0; ok != (profile == "default") {
			t.Errorf("%s: setarch linux32 exited %d (%s)", profile, r.Code, r.Stderr)
		}
		if err := inst.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPersistence writes to /root, stops, starts again with the same spec
// and finds the file; /tmp is fresh.
func TestPersistence(t *testing.T) {
	e := newEnv(t)
	s := e.spec(t)
	inst := e.start(t, s)
	sh(t, inst, "echo kept > /root/note; echo kept > /home/note; echo gone > /tmp/note")
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := inst.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	<-inst.Exited()
	if err := inst.ExitError(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("ExitError after Stop = %v", err)
	}
	e.assertClean(t, s)
	inst2 := e.start(t, s)
	if got := sh(t, inst2, "cat /root/note /home/note; test ! -e /tmp/note"); got != "kept\nkept" {
		t.Errorf("after restart: %q", got)
	}
}

// TestMountsAndReadOnlyRoot checks user mounts (read-only and read-write)
// and a read-only root.
func TestMountsAndReadOnlyRoot(t *testing.T) {
	e := newEnv(t)
	ro, rw := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "in"), []byte("from host"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Root in the sandbox is host uid 100000: give it the rw directory.
	if err := os.Chown(rw, 100000, 100000); err != nil {
		t.Fatal(err)
	}
	s := e.spec(t)
	s.Security.ReadOnlyRoot = true
	s.Mounts = []backend.Mount{{HostPath: ro, Path: "/data", ReadOnly: true}, {HostPath: rw, Path: "/work/out"}}
	inst := e.start(t, s)
	if got := sh(t, inst, "cat /data/in"); got != "from host" {
		t.Errorf("/data/in = %q", got)
	}
	if r := run(t, inst, "/bin/sh", "-c", "touch /data/x"); r.Code == 0 {
		t.Error("read-only mount writable")
	}
	sh(t, inst, "echo out > /work/out/file && touch /tmp/ok")
	if b, err := os.ReadFile(filepath.Join(rw, "file")); err != nil || string(b) != "out\n" {
		t.Errorf("host sees %q %v", b, err)
	}
	for _, p := range []string{"/root/x", "/home/x", "/var/tmp/x"} {
		if r := run(t, inst, "/bin/sh", "-c", "touch "+p); r.Code == 0 {
			t.Errorf("%s writable with a read-only root", p)
		}
	}
}

// TestImportedImage runs a sandbox from an imported directory holding only
// a static binary and a file, and checks that writes land in the sandbox's
// own layer.
func TestImportedImage(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	probe, err := os.ReadFile(probeBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "bin", "probe"), probe, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc", "greeting"), []byte("from the layer"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := randomID()
	img, err := e.images.Import(context.Background(), name, src)
	if err != nil {
		t.Fatal(err)
	}
	s := e.spec(t)
	s.Rootfs = backend.RootfsSpec{Layers: img.Layers}
	inst := e.start(t, s)
	if r := run(t, inst, "/bin/probe", "id"); strings.TrimSpace(r.Stdout) != "0 0" {
		t.Errorf("id = %+v", r)
	}
	if r := run(t, inst, "/bin/probe", "read", "/etc/greeting"); r.Stdout != "from the layer" {
		t.Errorf("read = %+v", r)
	}
	for _, w := range [][2]string{{"/etc/greeting", "changed"}, {"/new-file", "new"}} {
		if r := run(t, inst, "/bin/probe", "write", w[0], w[1]); r.Code != 0 {
			t.Fatalf("write %s: %+v", w[0], r)
		}
	}
	// The agent's own file operations see the same files.
	c := client(t, inst)
	if b, err := c.ReadFile(context.Background(), "/etc/greeting", 1<<20); err != nil || string(b) != "changed" {
		t.Errorf("agent ReadFile = %q, %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(img.Layers[0], "etc", "greeting")); string(b) != "from the layer" {
		t.Errorf("the layer changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(img.Layers[0], "new-file")); err == nil {
		t.Error("new file written into the layer")
	}
	ch, err := e.b.Changes(s)
	if err != nil {
		t.Fatal(err)
	}
	upper := ch.UpperDir
	if !strings.HasPrefix(upper, filepath.Join(s.StateDir, diskMount)+"/") {
		t.Errorf("the upper layer %s is not on the sandbox's disk", upper)
	}
	if b, _ := os.ReadFile(filepath.Join(upper, "etc", "greeting")); string(b) != "changed" {
		t.Errorf("upper layer has %q", b)
	}
	if err := e.images.Remove(name); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Remove of a running image: %v", err)
	}
	// The copy-on-write layer survives a restart.
	if err := inst.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	inst = e.start(t, s)
	if r := run(t, inst, "/bin/probe", "read", "/new-file"); r.Stdout != "new" {
		t.Errorf("after restart: %+v", r)
	}
}
