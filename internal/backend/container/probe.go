package container

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// Probe reports whether this host can run container sandboxes: root, the
// OCI runtime and its seccomp support, user namespaces with the configured
// id map, the cgroup controllers the limits need, and overlayfs. Each
// failed check carries a fix. The daemon's doctor command shows them.
func (b *Backend) Probe(ctx context.Context) []api.DoctorCheck {
	if b.opts.Flavor == GVisor {
		return b.probeGVisor(ctx)
	}
	var checks doctorChecks
	add := checks.add

	add("container: root", os.Geteuid() == 0, fmt.Sprintf("euid %d", os.Geteuid()),
		"run the agentkernel daemon as root; rootless containers are not supported yet")

	path, err := exec.LookPath(b.opts.Runtime)
	if err != nil {
		add("container: runtime", false, err.Error(), "install runc (apt-get install runc) or set the runtime path")
		add("container: runtime seccomp", false, "no runtime", "install runc built with libseccomp")
	} else {
		rt := &runc{path: path, root: b.opts.RuntimeRoot}
		v, err := rt.version(ctx)
		first, _, _ := strings.Cut(strings.TrimSpace(v), "\n")
		add("container: runtime", err == nil, path+": "+first, "reinstall runc; `"+path+" --version` fails")
		sv := seccompVersion(v)
		add("container: runtime seccomp", sv != "", "libseccomp "+sv,
			"install a runc built with libseccomp (Debian's and Ubuntu's runc packages are); without it sandboxes have no syscall filter")
		if err == nil {
			uerr := tryUserns(ctx, path, b.opts.IDMap.HostUID, b.opts.IDMap.HostGID, b.opts.IDMap.Size)
			detail := fmt.Sprintf("root maps to %d:%d (%d ids)", b.opts.IDMap.HostUID, b.opts.IDMap.HostGID, b.opts.IDMap.Size)
			if uerr != nil {
				detail = uerr.Error()
			}
			add("container: user namespaces", uerr == nil, detail,
				"enable user namespaces: sysctl -w user.max_user_namespaces=15000 (and kernel.unprivileged_userns_clone=1 on older Debian kernels)")
		}
	}

	missing, kind, err := missingControllers()
	detail := kind + " with memory, pids, cpu"
	if err != nil {
		detail = err.Error()
	} else if len(missing) > 0 {
		detail = kind + "; missing controllers: " + strings.Join(missing, ", ")
	}
	add("container: cgroup controllers", err == nil && len(missing) == 0, detail,
		"mount the cgroup hierarchies with the memory, pids and cpu controllers (cgroup v2: enable them in cgroup.subtree_control; v1: boot with swapaccount=1 for memory.memsw)")

	fs, _ := os.ReadFile("/proc/filesystems")
	hasOverlay := strings.Contains(string(fs), "\toverlay\n")
	add("container: overlayfs", hasOverlay, "needed for imported images", "modprobe overlay")
	checks = append(checks, probeDisks("container")...)
	return checks
}

// probeDisks checks what every sandbox's disk needs (see disk.go): loop
// devices, ext4 and mkfs.ext4. Without them no sandbox starts, as its
// writes could not be limited.
func probeDisks(prefix string) []api.DoctorCheck {
	var checks doctorChecks
	_, lerr := os.Stat("/dev/loop-control")
	detail := "/dev/loop-control: a loop device per sandbox's disk"
	if lerr != nil {
		detail = lerr.Error()
	}
	fs, _ := os.ReadFile("/proc/filesystems")
	mkfs, merr := exec.LookPath("mkfs.ext4")
	if merr == nil {
		detail += "; " + mkfs
	}
	ok := lerr == nil && merr == nil && strings.Contains(string(fs), "\text4\n")
	checks.add(prefix+": sandbox disks", ok, detail,
		"the sandboxes' disk limits need loop devices (modprobe loop; in a container, give it /dev/loop-control and the loop devices), ext4 and mkfs.ext4 (apt-get install e2fsprogs)")
	return checks
}

// doctorChecks collects a Probe's checks; a fix is kept only for a
// failed one.
type doctorChecks []api.DoctorCheck

func (cs *doctorChecks) add(name string, ok bool, detail, fix string) {
	c := api.DoctorCheck{Name: name, OK: ok, Detail: detail}
	if !ok {
		c.Fix = fix
	}
	*cs = append(*cs, c)
}

// tryUserns starts the runtime's --version in a new user namespace with
// the configured mapping: the same kernel path runc takes.
func tryUserns(ctx context.Context, bin string, uid, gid, size uint32) error {
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(uid), Size: int(size)}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(gid), Size: int(size)}},
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("creating a user namespace: %v %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// missingControllers names the required controllers that no mounted
// hierarchy offers, and says which cgroup layout the host has.
func missingControllers() ([]string, string, error) {
	ms, err := cgroupMounts()
	if err != nil {
		return nil, "", err
	}
	have := map[string]bool{}
	v1, v2 := false, false
	for _, m := range ms {
		if m.v2 {
			v2 = true
			if b, err := os.ReadFile(m.dir + "/cgroup.controllers"); err == nil {
				for _, c := range strings.Fields(string(b)) {
					have[c] = true
				}
			}
			continue
		}
		v1 = true
		for _, o := range m.options {
			have[o] = true
			if o == "memory" {
				if _, err := os.Stat(m.dir + "/memory.memsw.limit_in_bytes"); err != nil {
					have["memory.memsw"] = false
				} else {
					have["memory.memsw"] = true
				}
			}
		}
	}
	want := []string{"memory", "pids", "cpu"}
	if v1 && have["memory"] {
		want = append(want, "memory.memsw")
	}
	var missing []string
	for _, c := range want {
		if !have[c] {
			missing = append(missing, c)
		}
	}
	slices.Sort(missing)
	kind := "cgroup v2"
	switch {
	case v1 && v2:
		kind = "hybrid cgroup v1/v2"
	case v1:
		kind = "cgroup v1"
	case !v2:
		kind = "no cgroups mounted"
	}
	return missing, kind, nil
}
