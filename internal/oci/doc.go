// Package oci turns a sandbox.Spec into an OCI runtime-spec configuration
// (config.json) for runc, hardened by default.
//
// Every sandbox gets its own user namespace (root inside maps to an
// unprivileged host range, 100000:65536 by default), and its own mount, pid,
// ipc, uts, cgroup and network namespaces; the network namespace has only lo.
// Capabilities are cut to a small set (DefaultCapabilities), with
// no_new_privileges, Docker's default seccomp allowlist (or a stricter
// variant), Docker's masked and read-only /proc and /sys paths, cgroup limits
// on memory, pids and CPU, and only the default device nodes.
//
// Nothing here is silently relaxed: a setting that cannot be expressed is an
// error, and runc refuses to start a container whose seccomp filter or cgroup
// limits it cannot apply. The package only builds data; it runs nothing and
// touches the filesystem only in WriteConfig and when checking mount sources.
package oci
