package guestinit

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Where things are in the initramfs (see microvm/initramfs).
const (
	modulesDir = "/lib/agentkernel-modules"
	newRoot    = "/newroot"
	baseMnt    = "/run/ak/base"
	rwMnt      = "/run/ak/rw"
	// diskWait bounds the wait for the disks and the port to appear.
	diskWait = 20 * time.Second
)

// Boot prepares the VM as described in the package doc and returns the
// Config and the device of the agent's port. Only PID 1 may call it.
func Boot(log *slog.Logger) (*Config, string, error) {
	if os.Getpid() != 1 {
		return nil, "", errors.New("guestinit: not PID 1")
	}
	t0 := time.Now()
	for _, m := range []struct{ src, dst, fs, data string }{
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755"},
		{"proc", "/proc", "proc", ""},
		{"sysfs", "/sys", "sysfs", ""},
		{"tmpfs", "/run", "tmpfs", "mode=0755"},
	} {
		if err := mount(m.src, m.dst, m.fs, unix.MS_NOSUID|unix.MS_NOEXEC, m.data); err != nil {
			return nil, "", err
		}
	}
	cfg, err := ReadConfig(ConfigPath)
	if err != nil {
		return nil, "", err
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	if err := loadModules(log, modulesDir, moduleParams(string(cmdline))); err != nil {
		return nil, "", err
	}
	if err := mountRoot(cfg); err != nil {
		return nil, "", err
	}
	port, err := findPort(PortName)
	if err != nil {
		return nil, "", err
	}
	if err := prepareRoot(cfg); err != nil {
		return nil, "", err
	}
	if err := switchRoot(); err != nil {
		return nil, "", err
	}
	if err := setupSystem(cfg); err != nil {
		return nil, "", err
	}
	log.Debug("guest ready", "took", time.Since(t0), "port", port)
	return cfg, port, nil
}

func mount(src, dst, fstype string, flags uintptr, data string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("guestinit: mkdir %s: %w", dst, err)
	}
	if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
		return fmt.Errorf("guestinit: mount %s on %s (%s): %w", src, dst, fstype, err)
	}
	return nil
}

// moduleParams collects `module.param=value` words of the kernel command
// line by module (as modprobe does; the kernel leaves them to userspace).
func moduleParams(cmdline string) map[string]string {
	out := map[string]string{}
	for _, w := range strings.Fields(cmdline) {
		if w == "--" {
			break
		}
		k, v, ok := strings.Cut(w, "=")
		mod, param, dot := strings.Cut(k, ".")
		if !ok || !dot || mod == "" || param == "" {
			continue
		}
		mod = strings.ReplaceAll(mod, "-", "_")
		if out[mod] != "" {
			out[mod] += " "
		}
		out[mod] += param + "=" + v
	}
	return out
}

// loadModules loads every module in dir in name order. A module that is
// already loaded is fine.
func loadModules(log *slog.Logger, dir string, params map[string]string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("guestinit: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ko") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("guestinit: %w", err)
		}
		mod := modName(n)
		err = unix.FinitModule(int(f.Fd()), params[mod], 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("guestinit: loading module %s: %w", n, err)
		}
		log.Debug("module loaded", "module", mod)
	}
	return nil
}

// modName turns "003-07-virtio_blk.ko" into "virtio_blk".
func modName(file string) string {
	n := strings.TrimSuffix(file, ".ko")
	for i := 0; i < 2; i++ {
		if p, rest, ok := strings.Cut(n, "-"); ok && p != "" && strings.Trim(p, "0123456789") == "" {
			n = rest
		}
	}
	return strings.ReplaceAll(n, "-", "_")
}

// waitBlock returns /dev/vdX of the virtio disk with the given serial.
func waitBlock(serial string) (string, error) {
	deadline := time.Now().Add(diskWait)
	for {
		ents, _ := os.ReadDir("/sys/block")
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "serial"))
			if err == nil && strings.TrimSpace(string(b)) == serial {
				dev := "/dev/" + e.Name()
				if _, err := os.Stat(dev); err == nil {
					return dev, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("guestinit: no disk with serial %q after %v (disks: %v)", serial, diskWait, names(ents))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func names(ents []os.DirEntry) []string {
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	return out
}

// mountRoot mounts the new root at newRoot: an overlay of the lower disks
// under the writable disk's upper directory. A read-only root is made so
// at the end of the boot (readOnlyRoot), after the mount points it needs
// were created.
func mountRoot(cfg *Config) error {
	if len(cfg.Lowers) == 0 || len(cfg.Lowers) > 16 {
		return fmt.Errorf("guestinit: %d lower disks (want 1 to 16)", len(cfg.Lowers))
	}
	var lowers []string
	for i, serial := range cfg.Lowers {
		dev, err := waitBlock(serial)
		if err != nil {
			return err
		}
		dst := fmt.Sprintf("%s/lower%d", baseMnt, i)
		if err := mount(dev, dst, "ext4", unix.MS_RDONLY|unix.MS_NODEV, "noload"); err != nil {
			return err
		}
		lowers = append(lowers, dst)
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	rw, err := waitBlock(RWSerial)
	if err != nil {
		return err
	}
	if err := mount(rw, rwMnt, "ext4", unix.MS_NOATIME|unix.MS_NODEV, ""); err != nil {
		return err
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.MkdirAll(filepath.Join(rwMnt, d), 0o755); err != nil {
			return fmt.Errorf("guestinit: %w", err)
		}
	}
	opts += ",upperdir=" + rwMnt + "/upper,workdir=" + rwMnt + "/work"
	return mount("overlay", newRoot, "overlay", 0, opts)
}

// prepareRoot mounts the kernel filesystems inside the new root.
func prepareRoot(cfg *Config) error {
	// First the disks: waitBlock reads /sys, which moves below.
	for _, d := range cfg.Dirs {
		dev, err := waitBlock(d.Serial)
		if err != nil {
			return err
		}
		flags, data := uintptr(unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID), "noload"
		if d.Writable {
			flags, data = unix.MS_NODEV|unix.MS_NOSUID, ""
		}
		if err := mount(dev, filepath.Join(newRoot, filepath.Clean("/"+d.Path)), "ext4", flags, data); err != nil {
			return err
		}
	}
	for _, d := range []string{"/dev", "/proc", "/sys", "/run"} {
		os.MkdirAll(newRoot+d, 0o755)
		if err := unix.Mount(d, newRoot+d, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("guestinit: moving %s into the new root: %w", d, err)
		}
	}
	for _, p := range cfg.ReadOnly {
		dst := filepath.Join(newRoot, filepath.Clean("/"+p))
		if err := unix.Mount(dst, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("guestinit: binding %s: %w", p, err)
		}
		if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("guestinit: making %s read-only: %w", p, err)
		}
	}
	tmpFlags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	// /tmp on the writable disk, emptied at each boot: a tmpfs would hold
	// its files in guest RAM, so filling it would starve the VM.
	// (/run, and the writable disk under it, moved into the new root above.)
	tmpDir := newRoot + rwMnt + "/tmp"
	if err := os.RemoveAll(tmpDir); err != nil {
		return fmt.Errorf("guestinit: emptying /tmp: %w", err)
	}
	if err := os.Mkdir(tmpDir, 0o777); err != nil {
		return fmt.Errorf("guestinit: %w", err)
	}
	if err := os.Chmod(tmpDir, 0o777|os.ModeSticky); err != nil {
		return fmt.Errorf("guestinit: %w", err)
	}
	os.MkdirAll(newRoot+"/tmp", 0o755)
	if err := unix.Mount(tmpDir, newRoot+"/tmp", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("guestinit: binding /tmp: %w", err)
	}
	if err := unix.Mount("", newRoot+"/tmp", "", unix.MS_BIND|unix.MS_REMOUNT|tmpFlags, ""); err != nil {
		return fmt.Errorf("guestinit: /tmp options: %w", err)
	}
	if err := mount("devpts", newRoot+"/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if err := mount("tmpfs", newRoot+"/dev/shm", "tmpfs", tmpFlags, "mode=1777"); err != nil {
		return err
	}
	return nil
}

// switchRoot frees the initramfs and makes newRoot the root.
func switchRoot() error {
	// The initramfs is a ramfs in guest RAM: delete its big files first.
	os.RemoveAll(modulesDir)
	os.Remove("/init")
	os.Remove(ConfigPath)
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("guestinit: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("guestinit: moving the new root to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("guestinit: chroot: %w", err)
	}
	return unix.Chdir("/")
}

// setupSystem applies the hostname, the network and the environment.
func setupSystem(cfg *Config) error {
	if cfg.Hostname != "" {
		if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
			return fmt.Errorf("guestinit: hostname: %w", err)
		}
	}
	switch cfg.Network {
	case "", "none":
	case "loopback":
		if err := linkUp("lo"); err != nil {
			return err
		}
	case "gateway":
		if cfg.Net == nil {
			return fmt.Errorf("guestinit: network mode gateway without a link")
		}
		if err := linkUp("lo"); err != nil {
			return err
		}
		if err := setupNet(cfg.Net); err != nil {
			return err
		}
	default:
		return fmt.Errorf("guestinit: network mode %q is not supported", cfg.Network)
	}
	if cfg.ReadOnlyRoot {
		if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("guestinit: making the root read-only: %w", err)
		}
	}
	os.Clearenv()
	for _, kv := range cfg.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			os.Setenv(k, v)
		}
	}
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return nil
}

func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("guestinit: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("guestinit: %s flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("guestinit: bringing %s up: %w", name, err)
	}
	return nil
}

// findPort returns the device of the virtio-serial port with the given
// name (from /sys/class/virtio-ports/*/name; there is no udev for the
// /dev/virtio-ports links).
func findPort(name string) (string, error) {
	deadline := time.Now().Add(diskWait)
	for {
		ents, _ := os.ReadDir("/sys/class/virtio-ports")
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join("/sys/class/virtio-ports", e.Name(), "name"))
			if err == nil && strings.TrimSpace(string(b)) == name {
				return "/dev/" + e.Name(), nil
			}
		}
		if time.Now().After(deadline) {
			var devs []string
			vds, _ := os.ReadDir("/sys/bus/virtio/devices")
			for _, v := range vds {
				id, _ := os.ReadFile(filepath.Join("/sys/bus/virtio/devices", v.Name(), "device"))
				devs = append(devs, v.Name()+"="+strings.TrimSpace(string(id)))
			}
			return "", fmt.Errorf("guestinit: no virtio port named %q after %v (ports: %v; virtio devices: %v)", name, diskWait, names(ents), devs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// PowerOff syncs the disks and ends the VM. It does not return.
func PowerOff() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Without ACPI power-off, a reboot ends QEMU under -no-reboot.
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	for {
		time.Sleep(time.Hour)
	}
}
