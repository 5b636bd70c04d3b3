// Package kernel fetches, unpacks and finds the guest kernel of the microvm
// backend: Debian's linux-image-cloud-amd64, downloaded with `apt-get
// download` (never installed into /boot), its bzImage decompressed to the
// ELF vmlinux that QEMU boots through the PVH entry, and the modules the
// guest needs (GuestModules and their dependencies) copied beside it.
//
// A kernel directory (default $AGENTKERNEL_HOME/kernel) holds:
//
//	current            symlink to the kernel in use, <package>_<version>
//	<pkg>_<ver>/vmlinux
//	<pkg>_<ver>/modules/NN-<name>.ko   in load order
//	<pkg>_<ver>/manifest.json          package, version, release, modules
//
// Setup publishes a kernel with atomic renames, so a reader (a supervisor
// booting a sandbox) sees a complete kernel or none.
package kernel

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Manifest describes one unpacked kernel.
type Manifest struct {
	// Package and Version are the Debian package the kernel came from
	// (linux-image-6.1.0-56-cloud-amd64, 6.1.192-2); Meta is the
	// metapackage that chose it.
	Package string `json:"package"`
	Version string `json:"version"`
	Meta    string `json:"meta"`
	// Release is the kernel's uname -r.
	Release string `json:"release"`
	// Modules are the module file names under modules/, in load order.
	Modules []string `json:"modules"`
}

// Kernel is an unpacked kernel ready to boot.
type Kernel struct {
	Dir      string // the <pkg>_<ver> directory
	Vmlinux  string // path of the uncompressed ELF kernel
	Manifest Manifest
}

// ModulePaths returns the host paths of the modules in load order.
func (k *Kernel) ModulePaths() []string {
	out := make([]string, len(k.Manifest.Modules))
	for i, m := range k.Manifest.Modules {
		out[i] = filepath.Join(k.Dir, "modules", m)
	}
	return out
}

// ErrNotInstalled is wrapped by Load when no kernel has been set up.
var ErrNotInstalled = fmt.Errorf("%w: no microVM guest kernel is installed; run `agentkernel setup`", errdefs.ErrFailedPrecondition)

// Load returns the current kernel of dir.
func Load(dir string) (*Kernel, error) {
	cur := filepath.Join(dir, "current")
	target, err := os.Readlink(cur)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (looked in %s)", ErrNotInstalled, dir)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	if strings.Contains(target, "/") || target == ".." || target == "." {
		return nil, fmt.Errorf("%w: %s points outside %s", errdefs.ErrFailedPrecondition, cur, dir)
	}
	return loadDir(filepath.Join(dir, target))
}

func loadDir(d string) (*Kernel, error) {
	b, err := os.ReadFile(filepath.Join(d, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
	}
	k := &Kernel{Dir: d, Vmlinux: filepath.Join(d, "vmlinux")}
	if err := json.Unmarshal(b, &k.Manifest); err != nil {
		return nil, fmt.Errorf("%w: %s: %v; run `agentkernel setup` again", errdefs.ErrFailedPrecondition, d, err)
	}
	for _, m := range k.Manifest.Modules {
		if m != filepath.Base(m) || !strings.HasSuffix(m, ".ko") {
			return nil, fmt.Errorf("%w: %s: bad module name %q", errdefs.ErrFailedPrecondition, d, m)
		}
	}
	if fi, err := os.Stat(k.Vmlinux); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s: %v; run `agentkernel setup` again", ErrNotInstalled, k.Vmlinux, err)
	}
	return k, nil
}
