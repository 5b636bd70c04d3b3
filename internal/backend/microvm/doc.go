// Package microvm is the sandbox backend that gives every sandbox its own
// Linux kernel: a QEMU "microvm" machine (qemu-system-x86_64 -M microvm),
// driven over QMP, booting Debian's cloud kernel (see ./kernel) with an
// initramfs written in Go (see ./initramfs) whose /init is the guest agent
// (see internal/guestinit for what it does there).
//
// # Processes
//
// The supervisor (internal/supervisor) calls Start, which runs QEMU as its
// child, paused (-S), with two inherited sockets: QMP on fd 3 and the
// agent's virtio-serial port on fd 4 (socketpairs: no socket files, no
// sockaddr length limit, nobody else can connect). Start connects QMP,
// lets the VM run ("cont"), waits for QMP's VSERPORT_CHANGE (the guest
// opened its port) and for the agent's hello. QEMU dies with the
// supervisor (PR_SET_PDEATHSIG); Cleanup also kills a QEMU left by a dead
// supervisor, found by qemu.pid and checked against its command line.
//
// # The agent channel
//
// A virtio-serial port is one byte stream, but the supervisor dials the
// agent once per daemon connection, and once more for a graceful shutdown.
// So the port carries an outer yamux session (host: client): DialAgent
// opens one stream of it, and the guest hands each stream to the agent as
// a fresh connection, on which the usual agent protocol (its own, inner
// yamux session) runs exactly as on the container backend. The outer
// session lives as long as the VM; nothing reconnects. vsock is not used:
// this development host has no /dev/vhost-vsock to test it on.
//
// # Disks
//
// A sandbox boots from read-only lower disks shared by every sandbox of
// its image and a writable disk of its own (disk.ext4, sparse, kept across
// stop and start); the guest stacks them with overlayfs. All are ext4
// images made by `mkfs.ext4 -d` (no loop mounts); whatever has to be
// mounted to build one (bind mounts of /usr, idmapped layer mounts, an
// overlay) is mounted only in a private mount namespace of the building
// thread, so nothing can leak into the host's. The lowers:
//
//   - host image: a disk of the host's /usr (machine-wide, in
//     CacheDir/disks, keyed by the state of /usr and dpkg; building it
//     copies /usr, ~55-70 s for 5 GB here, so `agentkernel setup` does it
//     ahead, and a start after the host changed uses the older disk with a
//     warning rather than spend minutes) and a small disk of the image
//     store's scrubbed /etc. /usr is read-only in the guest, as on the
//     container backend.
//   - imported image: one disk of its layers, merged through an overlay of
//     idmapped mounts that undo the store's owner shift (see imagedisk.go),
//     cached in the image store.
//
// Host directories (--dir): read-only ones are copied into a disk of
// their own at every start (dir-N.ext4) and mounted read-only, so the
// sandbox sees them as they were at start, not live; writable ones are
// refused (the guest kernel has no 9p, and virtiofsd is not used).
//
// # Network
//
// "none" and "loopback": no network device at all (lo only). "gateway":
// a virtio-net device on QEMU's "-netdev stream" over a socketpair whose
// host end goes to the supervisor's network gateway (NetworkAttachment.
// AttachStream); the guest configures the interface, the default route,
// /etc/resolv.conf and the gateway's CA files from the attachment (see
// internal/guestinit). The gateway is the VM's only peer.
//
// # Accelerator
//
// KVM only if a test boot under KVM reaches the kernel's root-mount panic
// within 4 s (ProbeAccel); otherwise TCG, with a warning in the
// supervisor's log, in doctor, and "accelerator" in `sandbox info` (from
// runtime.json in the state directory). The probe's result is cached in
// CacheDir/accel.json, keyed by QEMU, kernel and /dev/kvm.
//
// # Files in StateDir
//
//	console.log    the guest's serial console (kernel errors, the agent's
//	               log), copied from a socket by the supervisor and capped
//	               (console.log.1 holds the previous 4 MB), so that the
//	               guest cannot fill the host's disk through it
//	qemu.log       QEMU's own stdout and stderr (capped likewise)
//	dir-N.ext4     copies of read-only host directories
//	initrd.cpio    this boot's initramfs (agent, modules, config)
//	disk.ext4      the writable disk
//	qemu.pid       QEMU's pid while it runs
//	runtime.json   accelerator, pid, kernel, vcpus, memory while it runs
//
// # Lifecycle
//
// Stop: the supervisor asks the agent to shut down; the agent exits, the
// guest's init powers off (ACPI), QEMU exits; Stop then sends QMP "quit",
// and SIGKILL after quitWait. A QEMU that exits on its own (crash, kill,
// guest panic) closes Exited, and ExitError says why, with the console's
// last lines; the supervisor marks the sandbox failed.
//
// # Boot time
//
// Under TCG on the 2-CPU development VM: Start ~1.8-2.5 s (kernel to init
// ~1 s, modules and mounts ~0.3 s, the rest QEMU and the agent), 5 at once
// in ~5-7 s. See docs/BENCHMARKS.md; these are software
// emulation numbers, not hardware-virtualisation ones.
package microvm
