package microvm

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// disk is one virtio-blk device.
type disk struct {
	path     string
	serial   string
	readOnly bool
}

// vmConfig is one QEMU invocation. QMP, the agent port and the serial
// console are connected sockets QEMU inherits (fds 3, 4 and 5): no socket
// files, no path length limits, and nobody else can connect to them.
type vmConfig struct {
	qemu    string
	name    string // "ak-<id>": shows in ps and /proc/PID/cmdline
	accel   string // "kvm" or "tcg"
	vcpus   int
	memMB   int
	kernel  string
	initrd  string
	cmdline string
	disks   []disk
	// paused starts the VM stopped (-S) until QMP "cont".
	paused bool
	// netMAC, if set, adds a virtio-net device with this address on a
	// "-netdev stream" over the socket on netFD (the network gateway).
	netMAC string
}

const (
	qmpFD     = 3
	portFD    = 4
	consoleFD = 5
	netFD     = 6
)

// chardevPath escapes a path for QEMU's option syntax (a comma doubles).
func optPath(p string) string { return strings.ReplaceAll(p, ",", ",,") }

func (c *vmConfig) args() []string {
	cpu := "max"
	if c.accel == "kvm" {
		cpu = "host"
	}
	a := []string{
		"-name", c.name + ",debug-threads=on",
		"-M", "microvm,pcie=off",
		"-accel", accelOpts(c.accel),
		"-cpu", cpu,
		"-smp", strconv.Itoa(c.vcpus),
		"-m", strconv.Itoa(c.memMB) + "M",
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-kernel", c.kernel,
		"-append", c.cmdline,
		"-chardev", "socket,id=con,fd=" + strconv.Itoa(consoleFD),
		"-serial", "chardev:con",
		"-chardev", "socket,id=qmp,fd=" + strconv.Itoa(qmpFD),
		"-mon", "chardev=qmp,mode=control",
		"-device", "virtio-serial-device,max_ports=2",
		"-chardev", "socket,id=agent,fd=" + strconv.Itoa(portFD),
		"-device", "virtserialport,id=agentport,chardev=agent,nr=1,name=org.agentkernel.agent",
		"-device", "virtio-rng-device",
	}
	if c.initrd != "" {
		a = append(a, "-initrd", c.initrd)
	}
	for i, d := range c.disks {
		id := "disk" + strconv.Itoa(i)
		drive := "id=" + id + ",if=none,format=raw,cache=none,aio=threads,file=" + optPath(d.path)
		if d.readOnly {
			drive += ",readonly=on"
		} else {
			drive += ",discard=unmap"
		}
		a = append(a, "-drive", drive, "-device", "virtio-blk-device,drive="+id+",serial="+d.serial)
	}
	if c.netMAC != "" {
		a = append(a, "-netdev", "stream,id=net0,server=off,addr.type=fd,addr.str="+strconv.Itoa(netFD),
			"-device", "virtio-net-device,netdev=net0,mac="+c.netMAC)
	}
	if c.paused {
		a = append(a, "-S")
	}
	return a
}

// command returns the QEMU process (not started). It dies with the thread
// that starts it (PR_SET_PDEATHSIG), so a killed supervisor does not leave
// a VM behind; Cleanup also kills by pid file.
func (c *vmConfig) command(qmpSock, portSock, consoleSock, netSock *os.File, log io.Writer) *exec.Cmd {
	cmd := exec.Command(c.qemu, c.args()...)
	cmd.ExtraFiles = []*os.File{qmpSock, portSock, consoleSock}
	if netSock != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, netSock)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd
}

// tcgCacheMB caps TCG's translation cache. QEMU's default is 1 GiB,
// filled lazily as the guest runs new code; an idle guest fills ~53 MB
// either way, and the cap cost no measurable boot time on the development
// host. It bounds what a busy guest's QEMU can hold beyond its RAM.
const tcgCacheMB = 128

func accelOpts(accel string) string {
	if accel == "tcg" {
		return "tcg,tb-size=" + strconv.Itoa(tcgCacheMB)
	}
	return accel
}

// kernelCmdline is the guest's command line: the serial console, quiet,
// reboot on panic (which -no-reboot turns into QEMU exiting), and the
// agent's arguments after "--". Every word before "--" must be one the
// kernel knows: it passes unknown ones to init, whose flag parsing would
// stop at them.
//
// Under TCG the guest's TSC runs at the host's rate, and the kernel's
// calibration of it against the emulated PIT fails on a busy host (the
// emulation is too slow and jittery), after which the boot hangs: on the
// development host 0 of 5 boots came up with four busy loops running, 5 of
// 5 with tsc_early_khz. So the host's TSC rate is passed in.
func kernelCmdline(debug bool, accel string) string {
	parts := []string{"console=ttyS0", "panic=-1", "reboot=t", "i8042.noaux", "i8042.nomux", "i8042.nopnp", "i8042.dumbkbd", "random.trust_cpu=on"}
	if khz := hostTSCkHz(); accel == "tcg" && khz > 0 {
		parts = append(parts, "tsc_early_khz="+strconv.Itoa(khz))
	}
	if !debug {
		parts = append(parts, "quiet", "loglevel=3")
	}
	parts = append(parts, "--", "--init")
	if debug {
		parts = append(parts, "--debug")
	}
	return strings.Join(parts, " ")
}

// hostTSCkHz is the host CPU's clock in kHz from /proc/cpuinfo ("cpu
// MHz" of the first CPU; with a constant TSC that is the TSC's rate), or 0.
func hostTSCkHz() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || mhz < 100 || mhz > 100000 {
				return 0
			}
			return int(mhz * 1000)
		}
	}
	return 0
}

// describeExit turns a QEMU exit into words.
func describeExit(ps *os.ProcessState) string {
	if ps == nil {
		return "unknown"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("killed by signal %v", ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ps.ExitCode())
}
