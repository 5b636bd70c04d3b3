package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/test/conformance"
)

// The microvm backend: every sandbox a QEMU microvm with its own kernel.
// These tests run under whatever accelerator the host gives (TCG here,
// where /dev/kvm does not boot a guest). `agentkernel setup` fills the
// machine-wide cache in /var/cache/agentkernel once (.ci/run does it
// first); each test's home then copies the kernel from there.

// newMicroVMEnv is a fresh home with the guest kernel set up.
func newMicroVMEnv(t *testing.T) *env {
	t.Helper()
	requireEnv(t)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed (scripts/setup.sh installs it)")
	}
	e := newEnv(t)
	r := e.ak(t, "setup")
	if r.code != 0 {
		t.Fatalf("agentkernel setup: %v", r)
	}
	t.Logf("setup: %s", r.stdout)
	return e
}

func TestMicroVMConformance(t *testing.T) {
	e := newMicroVMEnv(t)
	e.ok(t, "sandbox", "list")
	conformance.Run(t, e.client(t), conformance.Options{Backend: "microvm", Prefix: "vm-"})
}

// TestMicroVMPooled runs the suite on a microVM claimed from a warm pool:
// booted before the request, named and configured by its claim (the host
// name through the guest agent, which is root in its own kernel).
func TestMicroVMPooled(t *testing.T) {
	e := newMicroVMEnv(t)
	e.ok(t, "sandbox", "list")
	conformance.RunPooled(t, e.client(t), conformance.Options{Backend: "microvm", Prefix: "vmp-"})
}

// TestMicroVMInfo checks that the sandbox really has its own kernel and
// that info and doctor name the accelerator.
func TestMicroVMInfo(t *testing.T) {
	e := newMicroVMEnv(t)
	info := e.create(t, "vm-info", "--backend", "microvm", "--memory-mb", "256", "--vcpus", "1")
	if info.Backend != "microvm" || (info.Accelerator != "tcg" && info.Accelerator != "kvm") {
		t.Fatalf("info: %+v", info)
	}
	if out := e.ok(t, "sandbox", "info", "vm-info").stdout; !strings.Contains(out, "Accel:") {
		t.Errorf("sandbox info does not show the accelerator:\n%s", out)
	}
	host, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	guest := e.ok(t, "exec", "vm-info", "--", "cat", "/proc/sys/kernel/osrelease").stdout
	if guest == string(host) || !strings.Contains(guest, "cloud-amd64") {
		t.Errorf("guest kernel %q, host kernel %q: not a separate kernel", guest, host)
	}
	mem := e.ok(t, "exec", "vm-info", "--", "sh", "-c", "grep MemTotal /proc/meminfo").stdout
	if f := strings.Fields(mem); len(f) < 2 || atoi(f[1]) > 256*1024 || atoi(f[1]) < 128*1024 {
		t.Errorf("guest memory: %q, want about 256 MB", mem)
	}
	doc := e.ak(t, "doctor").stdout
	if !strings.Contains(doc, "microvm: accelerator") {
		t.Errorf("doctor does not report the accelerator:\n%s", doc)
	}
	if !strings.Contains(doc, "microvm: isolation microvm, pause yes") || !strings.Contains(doc, "container (default): isolation container, pause yes") {
		t.Errorf("doctor does not list the backends' capabilities:\n%s", doc)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// TestMicroVMBadInput: resources beyond the host and a missing kernel fail
// before boot with errors that say why.
func TestMicroVMBadInput(t *testing.T) {
	requireEnv(t)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed")
	}
	e := newEnv(t)
	r := e.ak(t, "sandbox", "create", "vm-nokernel", "--backend", "microvm")
	if r.code == 0 || !strings.Contains(r.stderr, "agentkernel setup") {
		t.Errorf("create without a kernel: %v", r)
	}
	e.ak(t, "sandbox", "remove", "vm-nokernel")
	if r := e.ak(t, "setup", "--skip-disk"); r.code != 0 {
		t.Fatalf("setup: %v", r)
	}
	r = e.ak(t, "sandbox", "create", "vm-cpus", "--backend", "microvm", "--vcpus", "4096")
	if r.code == 0 || !strings.Contains(r.stderr, "CPUs") {
		t.Errorf("4096 vcpus: %v", r)
	}
	e.ak(t, "sandbox", "remove", "vm-cpus")
	r = e.ak(t, "sandbox", "create", "vm-mem", "--backend", "microvm", "--memory-mb", "100000000")
	if r.code == 0 || !strings.Contains(r.stderr, "MB") {
		t.Errorf("100 TB of memory: %v", r)
	}
	e.ak(t, "sandbox", "remove", "vm-mem")
}

// TestMicroVMBadKernel: a kernel QEMU cannot load, and one that boots but
// whose guest cannot find its disks, fail with errors carrying QEMU's or
// the console's last lines.
func TestMicroVMBadKernel(t *testing.T) {
	e := newMicroVMEnv(t)
	cur, err := filepath.EvalSymlinks(filepath.Join(e.home, "kernel", "current"))
	if err != nil {
		t.Fatal(err)
	}
	// The files may be hard links into the machine-wide cache: replace,
	// never write through them.
	vmlinux := filepath.Join(cur, "vmlinux")
	good := vmlinux + ".good"
	if err := os.Rename(vmlinux, good); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(vmlinux, []byte("\x7fELF not really a kernel"), 0o644)
	r := e.ak(t, "sandbox", "create", "vm-badk", "--backend", "microvm")
	if r.code == 0 || !strings.Contains(r.stderr, "qemu") {
		t.Errorf("garbage kernel: %v", r)
	}
	t.Logf("garbage kernel: %s", r.stderr)
	e.ak(t, "sandbox", "remove", "vm-badk")

	// The real kernel without its modules: no virtio transport, no disk.
	os.Remove(vmlinux)
	os.Rename(good, vmlinux)
	manifest := filepath.Join(cur, "manifest.json")
	b, _ := os.ReadFile(manifest)
	os.Remove(manifest)
	os.WriteFile(manifest, []byte(strings.Replace(string(b), `"modules": [`, `"modules_off": [`, 1)), 0o644)
	r = e.ak(t, "sandbox", "create", "vm-nomod", "--backend", "microvm")
	if r.code == 0 || !strings.Contains(r.stderr, "console") || !strings.Contains(r.stderr, "guestinit") {
		t.Errorf("kernel without modules: %v", r)
	}
	t.Logf("kernel without modules: %s", r.stderr)
	e.ak(t, "sandbox", "remove", "vm-nomod")
}

// TestMicroVMKillQEMU kills QEMU while an exec runs: the exec fails, the
// sandbox is marked failed and nothing of it is left running.
func TestMicroVMKillQEMU(t *testing.T) {
	e := newMicroVMEnv(t)
	info := e.create(t, "vm-kill", "--backend", "microvm")
	pidFile := filepath.Join(e.sandboxDir(info.UUID), "qemu.pid")
	pid, err := readPID(pidFile)
	if err != nil || !alive(pid) {
		t.Fatalf("qemu pid: %d %v", pid, err)
	}
	done := make(chan result, 1)
	go func() { done <- e.ak(t, "exec", "vm-kill", "--", "sh", "-c", "echo started; sleep 60") }()
	time.Sleep(2 * time.Second)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code == 0 {
			t.Errorf("exec survived QEMU's death: %v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("exec still running 30s after QEMU was killed")
	}
	var got api.SandboxInfo
	if !waitFor(20*time.Second, func() bool { got = e.info(t, "vm-kill"); return got.Status == api.StatusFailed }) {
		t.Fatalf("after killing QEMU: %+v, want failed", got)
	}
	t.Logf("failed with: %s", got.Error)
	if got.Accelerator != "" {
		t.Errorf("a failed sandbox still reports accelerator %q", got.Accelerator)
	}
	if _, err := os.Stat(pidFile); err == nil {
		t.Errorf("%s left behind", pidFile)
	}
	// It can start again from its disk.
	e.ok(t, "sandbox", "start", "vm-kill")
	if out := e.ok(t, "exec", "vm-kill", "--", "echo", "back").stdout; out != "back\n" {
		t.Errorf("after restart: %q", out)
	}
}

// TestMicroVMFive runs five microVMs at once.
func TestMicroVMFive(t *testing.T) {
	e := newMicroVMEnv(t)
	// Start the daemon first: concurrent first commands race to start it.
	e.ok(t, "sandbox", "list")
	const n = 5
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			name := fmt.Sprintf("vm-five-%d", i)
			if r := e.ak(t, "sandbox", "create", name, "--backend", "microvm", "--memory-mb", "256"); r.code != 0 {
				errs[i] = r.String()
			}
		}(i)
	}
	wg.Wait()
	t.Logf("%d microVMs created in %v", n, time.Since(t0))
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("vm-five-%d", i)
		t.Cleanup(func() { e.ak(t, "sandbox", "remove", name) })
		if errs[i] != "" {
			t.Errorf("create %s: %s", name, errs[i])
			continue
		}
		out := e.ok(t, "exec", name, "--", "hostname").stdout
		if out != name+"\n" {
			t.Errorf("%s: hostname %q", name, out)
		}
	}
	running := 0
	for _, sb := range e.list(t) {
		if sb.Backend == "microvm" && sb.Status == api.StatusRunning {
			running++
		}
	}
	if running != n {
		t.Errorf("%d microVMs running, want %d", running, n)
	}
}

// TestMicroVMDaemonRestart: a microVM survives the daemon's SIGKILL and the
// restarted daemon re-adopts it, as a container does.
func TestMicroVMDaemonRestart(t *testing.T) {
	e := newMicroVMEnv(t)
	e.create(t, "vm-k9", "--backend", "microvm")
	e.ok(t, "exec", "vm-k9", "--", "sh", "-c", "echo survives > /root/k9.txt")
	pid, err := e.daemonPID()
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if !waitFor(10*time.Second, func() bool { return !alive(pid) }) {
		t.Fatalf("daemon %d survived SIGKILL", pid)
	}
	if info := e.info(t, "vm-k9"); info.Status != api.StatusRunning || info.Accelerator == "" {
		t.Fatalf("after the daemon restart: %+v", info)
	}
	if out := e.ok(t, "exec", "vm-k9", "--", "cat", "/root/k9.txt").stdout; out != "survives\n" {
		t.Errorf("exec after the daemon restart: %q", out)
	}
}

// TestMicroVMSupervisorKill kills the sandbox's supervisor: its QEMU must
// not outlive it, and the sandbox ends up failed.
func TestMicroVMSupervisorKill(t *testing.T) {
	e := newMicroVMEnv(t)
	info := e.create(t, "vm-sup", "--backend", "microvm")
	dir := e.sandboxDir(info.UUID)
	qpid, err := readPID(filepath.Join(dir, "qemu.pid"))
	if err != nil {
		t.Fatal(err)
	}
	spid, err := readPID(filepath.Join(dir, "supervisor.pid"))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(spid, syscall.SIGKILL)
	if !waitFor(10*time.Second, func() bool { return !alive(qpid) }) {
		t.Fatalf("qemu %d outlived its supervisor", qpid)
	}
	var got api.SandboxInfo
	if !waitFor(20*time.Second, func() bool { got = e.info(t, "vm-sup"); return got.Status == api.StatusFailed }) {
		t.Fatalf("after killing the supervisor: %+v, want failed", got)
	}
}

// TestMicroVMImportedImage boots an imported image (one layer holding only
// the static agent binary and a file) as a microVM.
func TestMicroVMImportedImage(t *testing.T) {
	e := newMicroVMEnv(t)
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	b, err := os.ReadFile(agentBin)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "bin", "agent"), b, 0o755)
	os.WriteFile(filepath.Join(src, "hello.txt"), []byte("from the image\n"), 0o644)
	e.ok(t, "image", "import", "vm-img", src)
	e.create(t, "vm-imgbox", "--backend", "microvm", "--image", "vm-img")
	if out := e.ok(t, "exec", "vm-imgbox", "--", "/bin/agent", "--version").stdout; strings.TrimSpace(out) == "" {
		t.Errorf("the image's agent printed no version")
	}
	if out := e.ok(t, "cp", "vm-imgbox:/hello.txt", "-").stdout; !strings.Contains(out, "from the image") {
		t.Errorf("hello.txt: %q", out)
	}
}

// TestMicroVMNetwork runs the network suite on microVMs: virtio-net over
// QEMU's -netdev stream to the sandbox's gateway. The probe directory is
// read-only, which microVMs get as a copy made at start.
func TestMicroVMNetwork(t *testing.T) {
	requireEnv(t)
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 is not installed")
	}
	for _, bin := range []string{"ip", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (apt: iproute2, curl)", bin)
		}
	}
	w := newNetWorld(t)
	if r := w.e.ak(t, "setup", "--skip-disk"); r.code != 0 {
		t.Fatalf("setup: %v", r)
	}
	conformance.RunNetwork(t, w.e.client(t), conformance.NetworkWorld{
		Backend: "microvm", Prefix: "vmn-", ProbeDir: w.probeDir, SecretValue: "sk-vm-" + strconv.Itoa(os.Getpid()),
		Leaks: w.leaks.Load,
		Dial: func(addr string) (c net.Conn, err error) {
			w.inWorld(t, func() { c, err = net.DialTimeout("tcp", addr, time.Second) })
			return c, err
		},
	})
}
