package kernel

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
)

// GuestModules are the modules the guest needs, by name; their
// dependencies are added from each module's modinfo. Whatever the kernel
// has built in (ext4, crc32c in Debian's cloud kernel) has no module and is
// skipped.
var GuestModules = []string{
	"virtio_mmio",                // the microvm machine's virtio transport
	"virtio_blk",                 // root disks
	"virtio_console",             // the agent's port (virtserialport)
	"virtio_net",                 // for the network gateway
	"virtio_rng",                 // entropy early in boot
	"vmw_vsock_virtio_transport", // vsock, where the host has vhost-vsock
	"overlay",                    // the writable layer over the shared disks
}

// maxModinfo bounds the .modinfo section read from one module.
const maxModinfo = 64 << 10

// Module is one loadable module found in a kernel package.
type Module struct {
	Name    string   // normalised: dashes become underscores
	Path    string   // relative to the scanned root
	Depends []string // normalised names
}

func normName(n string) string { return strings.ReplaceAll(n, "-", "_") }

// ScanModules reads every *.ko under root (the package's modules tree,
// which has no modules.dep: Debian runs depmod at install time) and
// returns them by name, with the dependencies their .modinfo declares.
func ScanModules(root string) (map[string]Module, error) {
	mods := map[string]Module{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(p, ".ko") {
			return nil
		}
		deps, err := modDepends(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		name := normName(strings.TrimSuffix(filepath.Base(p), ".ko"))
		mods[name] = Module{Name: name, Path: rel, Depends: deps}
		return nil
	})
	return mods, err
}

// modDepends reads "depends=" from a module's .modinfo section.
func modDepends(p string) ([]string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(sec.Open(), maxModinfo))
	if err != nil {
		return nil, err
	}
	return parseModinfo(b), nil
}

func parseModinfo(b []byte) []string {
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var deps []string
			for _, d := range strings.Split(string(v), ",") {
				if d = strings.TrimSpace(d); d != "" {
					deps = append(deps, normName(d))
				}
			}
			return deps
		}
	}
	return nil
}

// ResolveModules returns wanted and their dependencies, each after
// everything it depends on. Wanted names without a module are taken to be
// built in; a missing dependency is an error.
func ResolveModules(mods map[string]Module, wanted []string) ([]Module, error) {
	var order []Module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string, depth int) error
	visit = func(name string, depth int) error {
		switch {
		case state[name] == 2:
			return nil
		case state[name] == 1 || depth > 64:
			return fmt.Errorf("modules: dependency cycle through %s", name)
		}
		m, ok := mods[name]
		if !ok {
			return fmt.Errorf("modules: %s is a dependency but no module has that name", name)
		}
		state[name] = 1
		for _, d := range m.Depends {
			if err := visit(d, depth+1); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, m)
		return nil
	}
	for _, w := range wanted {
		if _, ok := mods[normName(w)]; !ok {
			continue // built in
		}
		if err := visit(normName(w), 0); err != nil {
			return nil, err
		}
	}
	return order, nil
}
