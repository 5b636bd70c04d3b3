package kernel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// DefaultMeta is the Debian metapackage that names the guest kernel.
const DefaultMeta = "linux-image-cloud-amd64"

// SetupOptions configure Setup.
type SetupOptions struct {
	// Dir is the kernel directory to install into (required).
	Dir string
	// CacheDir keeps unpacked kernels by package and version, so that a
	// second Setup (another home, a CI rerun) copies instead of
	// downloading; "" disables the cache.
	CacheDir string
	// Meta is the metapackage; default DefaultMeta.
	Meta string
	// Logf reports progress; nil is silent.
	Logf func(format string, args ...any)
}

var pkgName = regexp.MustCompile(`^[a-z0-9][a-z0-9.+-]{1,100}$`)

// Setup makes the candidate kernel of opts.Meta current in opts.Dir,
// fetching it with apt-get if neither Dir nor the cache has it.
func Setup(ctx context.Context, opts SetupOptions) (*Kernel, error) {
	if opts.Meta == "" {
		opts.Meta = DefaultMeta
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if !filepath.IsAbs(opts.Dir) {
		return nil, fmt.Errorf("%w: kernel directory %q must be absolute", errdefs.ErrInvalidArgument, opts.Dir)
	}
	pkg, err := aptDepends(ctx, opts.Meta)
	if err != nil {
		return nil, err
	}
	ver, err := aptVersion(ctx, pkg)
	if err != nil {
		return nil, err
	}
	key := pkg + "_" + ver
	if k, err := loadDir(filepath.Join(opts.Dir, key)); err == nil {
		logf("kernel %s already installed in %s", key, opts.Dir)
		return k, setCurrent(opts.Dir, key)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	src := ""
	if opts.CacheDir != "" {
		if _, err := loadDir(filepath.Join(opts.CacheDir, key)); err == nil {
			src = filepath.Join(opts.CacheDir, key)
			logf("kernel %s found in the cache %s", key, opts.CacheDir)
		}
	}
	if src == "" {
		where := opts.Dir
		if opts.CacheDir != "" {
			if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
				return nil, err
			}
			where = opts.CacheDir
		}
		logf("downloading %s %s (apt-get download)", pkg, ver)
		if err := fetch(ctx, where, key, opts.Meta, pkg, ver); err != nil {
			return nil, err
		}
		src = filepath.Join(where, key)
	}
	if src != filepath.Join(opts.Dir, key) {
		if err := copyKernel(src, opts.Dir, key); err != nil {
			return nil, err
		}
	}
	k, err := loadDir(filepath.Join(opts.Dir, key))
	if err != nil {
		return nil, err
	}
	return k, setCurrent(opts.Dir, key)
}

func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// aptDepends returns the kernel image package meta depends on.
func aptDepends(ctx context.Context, meta string) (string, error) {
	out, err := run(ctx, "", "apt-cache", "depends", meta)
	if err != nil {
		return "", fmt.Errorf("%w: finding the guest kernel package (is apt's list fetched? run apt-get update): %v", errdefs.ErrFailedPrecondition, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "Depends: "); ok && strings.HasPrefix(v, "linux-image-") && pkgName.MatchString(v) {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: %s depends on no linux-image package (run apt-get update)", errdefs.ErrFailedPrecondition, meta)
}

func aptVersion(ctx context.Context, pkg string) (string, error) {
	out, err := run(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errdefs.ErrFailedPrecondition, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "Version: "); ok && pkgName.MatchString(strings.ToLower(strings.ReplaceAll(v, ":", "."))) {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: no version for %s", errdefs.ErrFailedPrecondition, pkg)
}

// fetch downloads pkg and unpacks its kernel into where/key.
func fetch(ctx context.Context, where, key, meta, pkg, ver string) error {
	tmp, err := os.MkdirTemp(where, ".fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// apt drops privileges to _apt for downloads; let it write here.
	if err := os.Chmod(tmp, 0o777); err != nil {
		return err
	}
	if _, err := run(ctx, tmp, "apt-get", "download", "-q", pkg+"="+ver); err != nil {
		return fmt.Errorf("%w: downloading the guest kernel: %v", errdefs.ErrUnavailable, err)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download left %d .deb files", len(debs))
	}
	x := filepath.Join(tmp, "x")
	if _, err := run(ctx, tmp, "dpkg-deb", "-x", debs[0], x); err != nil {
		return err
	}
	vmlinuz, _ := filepath.Glob(filepath.Join(x, "boot", "vmlinuz-*"))
	if len(vmlinuz) != 1 {
		return fmt.Errorf("%s holds %d kernels in /boot", pkg, len(vmlinuz))
	}
	release := strings.TrimPrefix(filepath.Base(vmlinuz[0]), "vmlinuz-")
	out := filepath.Join(tmp, key)
	if err := os.MkdirAll(filepath.Join(out, "modules"), 0o755); err != nil {
		return err
	}
	bz, err := os.ReadFile(vmlinuz[0])
	if err != nil {
		return err
	}
	elf, err := ExtractVmlinux(bz)
	if err != nil {
		return fmt.Errorf("%s: %w", vmlinuz[0], err)
	}
	if err := os.WriteFile(filepath.Join(out, "vmlinux"), elf, 0o644); err != nil {
		return err
	}
	modDir := filepath.Join(x, "lib", "modules", release)
	mods, err := ScanModules(modDir)
	if err != nil {
		return err
	}
	order, err := ResolveModules(mods, GuestModules)
	if err != nil {
		return err
	}
	m := Manifest{Package: pkg, Version: ver, Meta: meta, Release: release}
	for i, mod := range order {
		name := fmt.Sprintf("%02d-%s.ko", i, mod.Name)
		if err := copyFile(filepath.Join(modDir, mod.Path), filepath.Join(out, "modules", name)); err != nil {
			return err
		}
		m.Modules = append(m.Modules, name)
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "manifest.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return publish(out, filepath.Join(where, key))
}

// publish renames a complete directory into place (replacing an older,
// incomplete one).
func publish(tmp, final string) error {
	if err := os.Rename(tmp, final); err != nil {
		if !errors.Is(err, fs.ErrExist) && !errors.Is(err, os.ErrExist) && !strings.Contains(err.Error(), "not empty") {
			return err
		}
		old := final + ".old-" + fmt.Sprint(time.Now().UnixNano())
		if err := os.Rename(final, old); err != nil {
			return err
		}
		defer os.RemoveAll(old)
		return os.Rename(tmp, final)
	}
	return nil
}

// copyKernel copies src into dir/key.
func copyKernel(src, dir, key string) error {
	tmp, err := os.MkdirTemp(dir, ".copy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	k, err := loadDir(src)
	if err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(tmp, "modules"), 0o755); err != nil {
		return err
	}
	files := []string{"vmlinux", "manifest.json"}
	for _, m := range k.Manifest.Modules {
		files = append(files, filepath.Join("modules", m))
	}
	for _, f := range files {
		if err := copyFile(filepath.Join(src, f), filepath.Join(tmp, f)); err != nil {
			return err
		}
	}
	return publish(tmp, filepath.Join(dir, key))
}

func copyFile(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// setCurrent points dir/current at key atomically.
func setCurrent(dir, key string) error {
	tmp := filepath.Join(dir, ".current-"+fmt.Sprint(time.Now().UnixNano()))
	if err := os.Symlink(key, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "current")); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
