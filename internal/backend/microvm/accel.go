package microvm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend/microvm/kernel"
)

// The accelerator. KVM is used only when it really boots the guest
// kernel: /dev/kvm may exist and still not work (on nested virtualization
// such as PVM a stock kernel hangs early in boot). So the probe boots the
// kernel without an initramfs under a deadline and expects the kernel's
// "unable to mount root" panic on the console, after which panic=-1 and
// -no-reboot make QEMU exit. Anything else falls back to TCG (software
// emulation, 10-50x slower) with a loud warning; every report names the
// accelerator in use, and TCG numbers are never hardware numbers.

// Accelerators.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// kvmProbeTimeout bounds the KVM probe boot (a working KVM panics in well
// under a second).
const kvmProbeTimeout = 4 * time.Second

// AccelInfo is the result of a probe.
type AccelInfo struct {
	Accel  string `json:"accel"`
	Detail string `json:"detail"`
	// Key identifies what was probed (kernel, QEMU, /dev/kvm); a cached
	// result with another key is stale.
	Key string    `json:"key"`
	At  time.Time `json:"at"`
}

// probeKey identifies the probed combination.
func probeKey(qemu string, k *kernel.Kernel) string {
	var st unix.Stat_t
	var kvm string
	if unix.Stat("/dev/kvm", &st) == nil {
		kvm = fmt.Sprintf("kvm:%d", st.Rdev)
	}
	var qst unix.Stat_t
	unix.Stat(qemu, &qst)
	return fmt.Sprintf("%s %d %s %s", qemu, qst.Mtim.Sec, k.Manifest.Package+"="+k.Manifest.Version, kvm)
}

// ProbeAccel decides between KVM and TCG by booting k under KVM. force
// ("kvm", "tcg" or "") skips the probe.
func ProbeAccel(ctx context.Context, qemu string, k *kernel.Kernel, force string) AccelInfo {
	key := probeKey(qemu, k)
	now := time.Now()
	switch force {
	case AccelTCG:
		return AccelInfo{Accel: AccelTCG, Detail: "TCG forced by configuration (software emulation, not hardware speed)", Key: key, At: now}
	case AccelKVM:
		return AccelInfo{Accel: AccelKVM, Detail: "KVM forced by configuration (not probed)", Key: key, At: now}
	}
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return AccelInfo{Accel: AccelTCG, Key: key, At: now,
			Detail: fmt.Sprintf("WARNING: /dev/kvm unusable (%v); using TCG software emulation: slow, and not hardware isolation speed", err)}
	}
	unix.Close(fd)
	took, err := probeBoot(ctx, qemu, k, AccelKVM, kvmProbeTimeout)
	if err != nil {
		return AccelInfo{Accel: AccelTCG, Key: key, At: now,
			Detail: fmt.Sprintf("WARNING: /dev/kvm exists but a test boot under KVM failed (%v); using TCG software emulation: slow, and not hardware isolation speed", err)}
	}
	return AccelInfo{Accel: AccelKVM, Key: key, At: now, Detail: fmt.Sprintf("KVM boots the guest kernel (test boot %v)", took.Round(time.Millisecond))}
}

// probeBoot boots k without an initramfs and waits for the kernel to
// reach its root-mount panic.
func probeBoot(ctx context.Context, qemu string, k *kernel.Kernel, accel string, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "agentkernel-probe-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	console := filepath.Join(dir, "console.log")
	cpu := "max"
	if accel == AccelKVM {
		cpu = "host"
	}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, qemu, "-M", "microvm,accel="+accel, "-cpu", cpu, "-m", "128M", "-smp", "1",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-kernel", k.Vmlinux, "-append", "console=ttyS0 panic=-1 reboot=t",
		"-chardev", "file,id=con,path="+optPath(console), "-serial", "chardev:con")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	runErr := cmd.Run()
	took := time.Since(t0)
	con, _ := os.ReadFile(console)
	if bytes.Contains(con, []byte("Kernel panic")) && bytes.Contains(con, []byte("mount root")) {
		return took, nil
	}
	if ctx.Err() != nil {
		return took, fmt.Errorf("no boot within %v (%d bytes of console)", timeout, len(con))
	}
	msg, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return took, fmt.Errorf("qemu: %v: %s", runErr, msg)
}

// cachedAccel returns the probe result cached in path if its key matches,
// else probes and caches.
func cachedAccel(ctx context.Context, path, qemu string, k *kernel.Kernel, force string) AccelInfo {
	if force != "" {
		return ProbeAccel(ctx, qemu, k, force)
	}
	key := probeKey(qemu, k)
	if b, err := os.ReadFile(path); err == nil {
		var ai AccelInfo
		if json.Unmarshal(b, &ai) == nil && ai.Key == key && (ai.Accel == AccelKVM || ai.Accel == AccelTCG) {
			return ai
		}
	}
	ai := ProbeAccel(ctx, qemu, k, "")
	if b, err := json.Marshal(ai); err == nil {
		tmp := fmt.Sprintf("%s.%d", path, os.Getpid())
		if os.WriteFile(tmp, b, 0o600) == nil {
			os.Rename(tmp, path)
		}
	}
	return ai
}
