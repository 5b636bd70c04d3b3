// Package guestinit is what the guest agent does first when it is the init
// of a microVM (internal/backend/microvm): the kernel runs it from the
// initramfs as /init with `--init`, and Boot
//
//  1. mounts devtmpfs, proc and sysfs;
//  2. reads its Config from /agentkernel.json (written into the initramfs
//     by the host for this boot: hostname, environment, network, disks);
//  3. loads the modules shipped in the initramfs, in the order of their
//     names (dependencies first), with finit_module, passing
//     `module.param=value` options found on the kernel command line;
//  4. finds the disks by their virtio serial numbers, mounts the shared
//     read-only lower disks and the sandbox's writable disk, and stacks an
//     overlay of them as the new root;
//  5. mounts /proc, /sys, /dev, /dev/pts, /dev/shm and a fresh /tmp in
//     it, makes Config.ReadOnly directories read-only, removes the
//     initramfs files (they would pin guest RAM), switches root into it,
//     sets the hostname, configures the network (lo; the gateway's
//     interface, route and files), makes a read-only root read-only and
//     sets the environment;
//  6. returns the device of the agent's virtio-serial port.
//
// The VM's init then starts the agent again in new PID and mount
// namespaces (StartSandbox, Stage2), so that the sandbox's processes see
// only themselves, not the guest kernel's threads, as on the other
// backends. That agent serves on a Listener over the port (see
// listener.go for why the port carries an outer yamux session). When it
// exits, or if Boot fails, init prints why on the console (the host keeps
// it as console.log) and powers the VM off, so the host reports the error
// with the console's last lines instead of waiting for a timeout.
package guestinit
