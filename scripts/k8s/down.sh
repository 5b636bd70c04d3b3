#!/bin/bash
# Tears down what up.sh started: the cluster's processes by PID file, every
# container and shim, the mounts under $K, the CNI bridge, the cgroups the
# kubelet and containerd made, and the host paths they hardcode. The cached
# binaries stay. Idempotent; exits non-zero if anything is left behind.
K=${K:-/var/lib/agentkernel-k8s}
KV=${KV:-1.37.2}
CACHE=${CACHE:-/var/cache/agentkernel/k8s}
BRIDGE=akk8s0
A="--address $K/run/containerd/containerd.sock"
stop() { # name
	local f=$K/run/$1.pid p
	[ -f "$f" ] || return 0
	p=$(cat "$f")
	if kill -0 "$p" 2>/dev/null; then
		kill "$p"
		for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
		kill -0 "$p" 2>/dev/null && kill -9 "$p"
	fi
	rm -f "$f"
}
# the kubelet first, so that nothing restarts the containers removed below
for c in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do stop $c; done
if [ -S "$K/run/containerd/containerd.sock" ]; then
	for t in $(ctr $A -n k8s.io tasks ls -q 2>/dev/null); do ctr $A -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
	sleep 1
	for t in $(ctr $A -n k8s.io tasks ls -q 2>/dev/null); do ctr $A -n k8s.io tasks delete -f "$t" >/dev/null 2>&1; done
	for c in $(ctr $A -n k8s.io containers ls -q 2>/dev/null); do ctr $A -n k8s.io containers delete "$c" >/dev/null 2>&1; done
fi
stop containerd
# shims whose containerd is gone (they are children of nobody): only ours, by their -address
for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $K/run/containerd/containerd.sock" || true); do kill -9 "$p" 2>/dev/null; done
grep " $K/" /proc/mounts | awk '{print $2}' | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
ip link del "$BRIDGE" 2>/dev/null
for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/unified/kubepods /sys/fs/cgroup/kubepods; do
	[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
done
# paths outside $K that kubelet, containerd 1.6 and libcni hardcode
# and the volumes the hostPath provisioner made (up.sh's storage class)
rm -rf /tmp/hostpath_pv /tmp/hostpath-provisioner
rm -rf /run/containerd/s /run/containerd/fifo /run/containerd/runc /var/lib/kubelet/device-plugins /var/lib/cni/results /var/log/containers
rmdir /var/lib/kubelet /var/lib/cni /run/containerd 2>/dev/null
# fresh cluster state next time; certificates and images stay
rm -rf "$K/var" "$K/run"
left=0
n=$(grep -c " $K/" /proc/mounts); [ "$n" = 0 ] || { echo "down.sh: $n mounts left under $K" >&2; left=1; }
n=$(ls -d /sys/fs/cgroup/*/kubepods 2>/dev/null | wc -l); [ "$n" = 0 ] || { echo "down.sh: $n kubepods cgroups left" >&2; left=1; }
ip link show "$BRIDGE" >/dev/null 2>&1 && { echo "down.sh: $BRIDGE still exists" >&2; left=1; }
pgrep -f "$CACHE/v$KV/bin/|$K/" >/dev/null && { echo "down.sh: processes left: $(pgrep -f "$CACHE/v$KV/bin/|$K/" | tr '\n' ' ')" >&2; left=1; }
exit $left
