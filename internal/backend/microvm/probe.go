package microvm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// Probe reports whether this host can run microVM sandboxes: QEMU, the
// guest kernel, mkfs.ext4, the accelerator (a real test boot under KVM,
// falling back to TCG with a warning), vhost-vsock, and whether the host
// image's disk is built. Each failed check carries a fix.
func (b *Backend) Probe(ctx context.Context) []api.DoctorCheck {
	var checks []api.DoctorCheck
	add := func(name string, ok bool, detail, fix string) {
		c := api.DoctorCheck{Name: "microvm: " + name, OK: ok, Detail: detail}
		if !ok {
			c.Fix = fix
		}
		checks = append(checks, c)
	}
	qemu, qerr := exec.LookPath(b.opts.QEMU)
	if qerr != nil {
		add("qemu", false, qerr.Error(), "apt-get install qemu-system-x86 (or run scripts/setup.sh)")
	} else {
		out, _ := exec.CommandContext(ctx, qemu, "--version").Output()
		first, _, _ := strings.Cut(string(out), "\n")
		add("qemu", true, qemu+": "+first, "")
	}
	_, err := exec.LookPath("mkfs.ext4")
	add("mkfs.ext4", err == nil, "builds the root disks", "apt-get install e2fsprogs")
	k, kerr := b.Kernel()
	if kerr != nil {
		add("kernel", false, kerr.Error(), "run `agentkernel setup`")
	} else {
		add("kernel", true, fmt.Sprintf("%s %s (%s), %d modules", k.Manifest.Package, k.Manifest.Version, k.Manifest.Release, len(k.Manifest.Modules)), "")
	}
	if qerr == nil && kerr == nil {
		// Doctor probes afresh rather than trusting the cached result.
		ai := ProbeAccel(ctx, qemu, k, b.opts.Accel)
		b.accelMu.Lock()
		b.accel = &ai
		b.accelMu.Unlock()
		// TCG works but is software emulation: shown as a passing check
		// whose detail starts with the warning.
		add("accelerator", true, strings.ToUpper(ai.Accel)+": "+ai.Detail, "")
	}
	if _, err := os.Stat("/dev/vhost-vsock"); err == nil {
		add("agent channel", true, "/dev/vhost-vsock exists, but the agent uses virtio-serial (vsock is not used yet)", "")
	} else {
		add("agent channel", true, "virtio-serial (no /dev/vhost-vsock on this host)", "")
	}
	if b.opts.Images != nil {
		if hv, err := b.opts.Images.HostView(ctx); err == nil {
			p := filepath.Join(b.opts.CacheDir, "disks", "host-usr-"+hostKey(hv)+".ext4")
			_, err := os.Stat(p)
			detail := p
			if err != nil {
				detail = "not built for the host's current /usr (a start uses an older one if there is one, else builds it)"
			}
			add("host image disk", err == nil, detail,
				"run `agentkernel setup` (building it copies /usr: a minute or more)")
		}
	}
	return checks
}

// Prepare builds what the first start would otherwise build: the host
// image's usr and /etc disks. logf reports progress.
func (b *Backend) Prepare(ctx context.Context, logf func(string, ...any)) error {
	if b.opts.Images == nil {
		return fmt.Errorf("microvm: no image store")
	}
	hv, err := b.opts.Images.HostView(ctx)
	if err != nil {
		return err
	}
	logf("building the host image's disk from %v (once per host state; may take minutes)", hv.Binds)
	usr, _, err := hostUsrDisk(ctx, b.opts.CacheDir, hv, false)
	if err != nil {
		return err
	}
	logf("host disk: %s", usr)
	etc, err := etcDisk(ctx, b.opts.Images.Root(), hv.Etc)
	if err != nil {
		return err
	}
	logf("/etc disk: %s", etc)
	return nil
}
