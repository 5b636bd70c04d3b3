// Package container is the sandbox backend that runs each sandbox as a
// hardened OCI container with runc (see internal/oci for what "hardened"
// means: user namespace, reduced capabilities, seccomp, masked /proc, cgroup
// limits). Its gvisor flavor (Options.Flavor, backend name "gvisor") runs the
// same bundles with runsc; gvisor.go holds everything that differs.
//
// # Files
//
// Everything a sandbox keeps on the host lives in its StateDir, except its
// root filesystem's mount point:
//
//	bundle/config.json  the runtime spec, rewritten on every Start
//	disk.ext4           the sandbox's disk, Resources.DiskMB (see disk.go),
//	                    loop-mounted at disk/ while it runs, holding:
//	disk/overlay/upper,work  the copy-on-write layer (imported images)
//	disk/persist/       /root, /home and /var/tmp of the host image
//	disk/tmp/           /tmp, made afresh at each Start
//	agent-run/          bound at /.agentkernel/run; holds agent.sock
//	console.log         the container's stdout and stderr (and runc's errors)
//	init.pid            written by runc
//	restored            gvisor: Spec.Restore was used (later Starts boot
//	                    afresh; see checkpoint.go)
//	net/                a gateway sandbox's resolv.conf and CA files
//	<RootfsDir>/<id>    host image: a fresh skeleton owned by host root;
//	                    imported image: the overlayfs mount point
//	<RootfsDir>/../sysfs/<id>  a gateway sandbox's sysfs, mounted from
//	                    inside its network namespace (see network.go)
//
// Both kinds of root keep their writable parts across Stop and a later Start
// with the same Spec: the overlay's upper layer and persist/ stay on the
// disk. Stop and Cleanup unmount and delete <RootfsDir>/<id> and unmount
// the disk. (A spec without DiskMB, from before disks, keeps overlay/,
// persist/ and tmp/ directly in StateDir, unlimited.)
//
// # Permissions on the path to the rootfs
//
// runc's container init runs as the mapped root (host uid 100000 by
// default) inside the user namespace, without any privilege over files of
// host root. Before pivot_root it bind-mounts the rootfs onto itself by
// path, so it must be able to search every directory on the way to the
// rootfs; the daemon's home and StateDir are 0700 root, which fails with
// EACCES. Bind-mount sources are different: runc 1.1 opens them in the
// host's namespace and passes descriptors in, so the agent binary, the
// agent-run and persist directories, the /etc copy and user mounts may sit
// below 0700 directories (the tests keep them there).
//
// Hence the rootfs lives apart, under Options.RootfsDir (default
// /run/agentkernel/rootfs), whose directories only need the search bit for
// others (0711: nothing can be listed, nothing opened to writing); Start
// checks this and names a directory that lacks it. No group or mode of the
// daemon's home is changed. What the sandbox must own is made so explicitly:
// agent-run/, persist/* and the overlay's upper root belong to the mapped
// root.
//
// # Exit detection
//
// The supervisor sets PR_SET_CHILD_SUBREAPER, so once `runc run --detach`
// exits, the container's init is the supervisor's child. The instance opens
// a pidfd on the init (read from runc's --pid-file) and lets Go's poller
// wake it when the process exits; it then reaps the init with
// waitid(P_PIDFD) for its exit status. A pidfd cannot be confused by pid
// reuse, costs no thread per sandbox, and needs no polling of `runc state`.
//
// # Start latency
//
// Start is dominated by `runc run --detach` (namespaces, mounts, seccomp
// filter compilation): on the development VM a warm Start takes 40-65 ms,
// of which preparing the bundle is ~3 ms, runc ~40-60 ms and the first agent
// connection ~1 ms. The first Start with a new image store also copies the
// host's /etc (once; ~1 s on that VM's slow disk). The tests log every
// Start's duration; with Options.Logger at debug level Start logs the split.
package container
