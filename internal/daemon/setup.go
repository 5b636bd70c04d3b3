package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/agentkernel/agentkernel/internal/backend/microvm"
	"github.com/agentkernel/agentkernel/internal/backend/microvm/kernel"
	"github.com/agentkernel/agentkernel/internal/paths"
)

// SetupOptions configure Setup.
type SetupOptions struct {
	// SkipDisk skips building the host image's disk for microVMs.
	SkipDisk bool
	// Logf reports progress (required).
	Logf func(format string, args ...any)
}

// Setup is `agentkernel setup`, run locally (no daemon needed): it
// installs the microVM guest kernel into the home's kernel directory
// (fetching Debian's package with apt-get unless the machine-wide cache
// under /var/cache/agentkernel has it), builds the host image's disks and
// reports which accelerator microVMs will use.
func Setup(ctx context.Context, opts SetupOptions) error {
	l, err := paths.Default()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.Home, 0o700); err != nil {
		return err
	}
	cache := ""
	if os.Geteuid() == 0 {
		cache = filepath.Join(microvm.DefaultCacheDir, "kernel")
	}
	k, err := kernel.Setup(ctx, kernel.SetupOptions{Dir: KernelDir(l), CacheDir: cache, Logf: opts.Logf})
	if err != nil {
		return fmt.Errorf("guest kernel: %w", err)
	}
	opts.Logf("guest kernel: %s %s (Linux %s) in %s", k.Manifest.Package, k.Manifest.Version, k.Manifest.Release, k.Dir)
	h, err := newHostRuntime(l, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	if !opts.SkipDisk {
		if os.Geteuid() != 0 {
			return fmt.Errorf("building the host image's disk needs root (bind mounts); rerun as root or pass --skip-disk")
		}
		if err := h.microvm.Prepare(ctx, opts.Logf); err != nil {
			return fmt.Errorf("host image disk: %w", err)
		}
	}
	if qemu, err := exec.LookPath(microvm.DefaultQEMU); err != nil {
		opts.Logf("WARNING: %s not found: install qemu-system-x86 (scripts/setup.sh)", microvm.DefaultQEMU)
	} else {
		ai := h.microvm.Accel(ctx, qemu, k)
		opts.Logf("accelerator: %s (%s)", ai.Accel, ai.Detail)
	}
	return nil
}
