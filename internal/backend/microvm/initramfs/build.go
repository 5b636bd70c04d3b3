package initramfs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Layout of the guest's initramfs, shared with internal/guestinit.
const (
	// InitPath is the agent binary, run by the kernel as init.
	InitPath = "init"
	// ModulesDir holds the modules, loaded in the lexical order of their
	// names (kernel.Setup names them NN-name.ko).
	ModulesDir = "lib/agentkernel-modules"
)

// Build writes to dst (mode 0600) an initramfs with the agent as /init,
// the given modules under ModulesDir in the order given, and the extra
// files (name relative to the root → content, mode 0600).
func Build(dst, agent string, modules []string, extra map[string][]byte) (retErr error) {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err := f.Close(); retErr == nil {
			retErr = err
		}
		if retErr != nil {
			os.Remove(dst)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := NewWriter(bw)
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "newroot", "lib", ModulesDir} {
		if err := w.Dir(d, 0o755); err != nil {
			return err
		}
	}
	if err := w.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	if err := w.CharDev("dev/null", 0o666, 1, 3); err != nil {
		return err
	}
	if err := w.HostFile(InitPath, 0o755, agent); err != nil {
		return fmt.Errorf("adding the agent: %w", err)
	}
	for i, m := range modules {
		name := fmt.Sprintf("%s/%03d-%s", ModulesDir, i, filepath.Base(m))
		if err := w.HostFile(name, 0o644, m); err != nil {
			return fmt.Errorf("adding module: %w", err)
		}
	}
	names := make([]string, 0, len(extra))
	for n := range extra {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := w.Bytes(n, 0o600, extra[n]); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return bw.Flush()
}
