#!/bin/bash
# Brings up a single-node Kubernetes cluster on this host for the kubernetes
# backend's tests: containerd, etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and a kubelet, all bound to 127.0.0.1, started with nohup and
# tracked by PID files under $K/run (there is no init system). Pods get a CNI
# bridge without a gateway or masquerade, so they reach nothing but each
# other. Prints the admin kubeconfig's path last. down.sh undoes all of it.
#
# Host facts this needs (see docs/KUBERNETES.md): root lacks CAP_SYS_RESOURCE
# (containerd's restrict_oom_score_adj), the cgroup hierarchy is a v1/v2
# hybrid (kubelet failCgroupV1: false, cgroupfs driver), and the node name
# must resolve to 127.0.0.1 (the apiserver reaches the kubelet by Hostname).
set -euo pipefail
KV=${KV:-1.37.2}
CACHE=${CACHE:-/var/cache/agentkernel/k8s}
BIN=$CACHE/v$KV/bin
K=${K:-/var/lib/agentkernel-k8s}
NODE=${NODE:-$(hostname)}
BRIDGE=akk8s0
SUBNET=10.244.0.0/24
P=$K/pki
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
	[ -x "$BIN/$c" ] || { echo "up.sh: $BIN/$c missing: run scripts/k8s/build.sh" >&2; exit 1; }
done
getent hosts "$NODE" | grep -q '^127\.' || { echo "up.sh: node name $NODE must resolve to 127.0.0.1 (/etc/hosts)" >&2; exit 1; }
for port in 2379 2380 6443 10250 10257 10259; do
	if ss -Hltn "sport = :$port" | grep -q .; then
		echo "up.sh: port $port on this host is taken: another cluster is up (scripts/k8s/down.sh stops ours)" >&2
		exit 1
	fi
done
t0=$(date +%s.%N)
mkdir -p "$K"/{run,logs,etc/cni,pki,images,var/etcd,var/kubelet,var/log/pods}

# --- certificates and kubeconfigs (kept between runs; the CA is the root of all)
sign() { # name subject [subjectAltName]
	local n=$1 subj=$2 san=${3:-}
	[ -f "$P/$n.crt" ] && return 0
	openssl req -newkey rsa:2048 -nodes -keyout "$P/$n.key" -out "$P/$n.csr" -subj "$subj" 2>/dev/null
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=digitalSignature,keyEncipherment"
		if [ -n "$san" ]; then echo "extendedKeyUsage=serverAuth,clientAuth"; echo "subjectAltName=$san"; else echo "extendedKeyUsage=clientAuth"; fi
	} >"$P/$n.ext"
	openssl x509 -req -in "$P/$n.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial -out "$P/$n.crt" -days 365 -extfile "$P/$n.ext" 2>/dev/null
	rm -f "$P/$n.csr" "$P/$n.ext"
}
[ -f "$P/ca.crt" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/ca.key" -out "$P/ca.crt" -days 365 -subj "/CN=agentkernel-test-ca" 2>/dev/null
sign apiserver "/CN=kube-apiserver" "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:$NODE,IP:127.0.0.1,IP:10.96.0.1"
sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
sign admin "/O=system:masters/CN=agentkernel-admin"
sign controller-manager "/CN=system:kube-controller-manager"
sign scheduler "/CN=system:kube-scheduler"
sign kubelet-client "/O=system:nodes/CN=system:node:$NODE"
sign kubelet "/CN=$NODE" "DNS:$NODE,DNS:localhost,IP:127.0.0.1"
[ -f "$P/sa.key" ] || { openssl genrsa -out "$P/sa.key" 2048 2>/dev/null; openssl rsa -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null; }
kubeconfig() { # name cert
	local f=$P/$1.kubeconfig
	[ -f "$f" ] && return 0
	cat >"$f" <<EOK
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: "$(base64 -w0 "$P/ca.crt")"}}]
users: [{name: $1, user: {client-certificate-data: "$(base64 -w0 "$P/$2.crt")", client-key-data: "$(base64 -w0 "$P/$2.key")"}}]
contexts: [{name: local, context: {cluster: local, user: $1}}]
current-context: local
EOK
}
kubeconfig admin admin
kubeconfig controller-manager controller-manager
kubeconfig scheduler scheduler
kubeconfig kubelet kubelet-client

# --- configuration
cat >"$K/etc/containerd.toml" <<EOC
version = 2
root = "$K/var/containerd"
state = "$K/run/containerd"
[grpc]
  address = "$K/run/containerd/containerd.sock"
[ttrpc]
  address = "$K/run/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  netns_mounts_under_state_dir = true
  # root here has no CAP_SYS_RESOURCE: runc cannot write oom_score_adj -998
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
        Root = "$K/run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$K/etc/cni"
EOC
cat >"$K/etc/cni/10-agentkernel.conflist" <<EOC
{"cniVersion": "0.4.0", "name": "agentkernel-test", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET"}]], "dataDir": "$K/var/cni-ipam"}}]}
EOC
cat >"$K/etc/kubelet.yaml" <<EOC
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $P/ca.crt}}
authorization: {mode: Webhook}
address: 127.0.0.1
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
tlsCertFile: $P/kubelet.crt
tlsPrivateKeyFile: $P/kubelet.key
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$K/run/containerd/containerd.sock
podLogsDir: $K/var/log/pods
enforceNodeAllocatable: []
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 50
# every backend bounds a sandbox's processes (backend.Resources.PidsLimit,
# default 1024); a pod spec cannot, the kubelet can, per pod
podPidsLimit: 1024
EOC

# --- local images: no registry is reachable, so both are built here and
# imported; pods name them with imagePullPolicy: Never.
if [ ! -f "$K/images/pause.tar" ]; then
	d=$(mktemp -d)
	gcc -Os -static -DVERSION=v3.10-agentkernel -o "$d/pause" "$CACHE/v$KV/pause.c"
	strip "$d/pause"
	python3 "$(dirname "$0")/mkimage.py" "$K/images/pause.tar" registry.k8s.io/pause:3.10 "$d" '["/pause"]' >/dev/null
	rm -rf "$d"
fi
if [ ! -f "$K/images/busybox-2.tar" ]; then
	d=$(mktemp -d)
	mkdir -p "$d/bin" "$d/tmp" "$d/etc" "$d/root"
	chmod 1777 "$d/tmp"
	cp /bin/busybox "$d/bin/busybox"
	for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$d/bin/$a"; done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$d/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$d/etc/group"
	python3 "$(dirname "$0")/mkimage.py" "$K/images/busybox-2.tar" docker.io/library/busybox:local "$d" null '["sh"]' >/dev/null
	rm -rf "$d"
fi

start() { # name command...
	local n=$1
	shift
	nohup "$@" >"$K/logs/$n.log" 2>&1 &
	echo $! >"$K/run/$n.pid"
}
waitfor() { # what command...
	local what=$1
	shift
	for _ in $(seq 1 240); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
	echo "up.sh: $what not ready after 60 s; see $K/logs" >&2
	return 1
}
A="--address $K/run/containerd/containerd.sock"
start containerd /usr/bin/containerd --config "$K/etc/containerd.toml"
waitfor containerd ctr $A version
for img in pause busybox-2; do ctr $A -n k8s.io images import "$K/images/$img.tar" >/dev/null; done
for f in ${EXTRA_IMAGES:-}; do ctr $A -n k8s.io images import "$f" >/dev/null; done
start etcd etcd --name agentkernel --data-dir "$K/var/etcd" --listen-client-urls http://127.0.0.1:2379 \
	--advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
	--initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster agentkernel=http://127.0.0.1:2380 \
	--listen-metrics-urls http://127.0.0.1:2381
waitfor etcd curl -sf http://127.0.0.1:2379/health
start kube-apiserver "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
	--bind-address=127.0.0.1 --secure-port=6443 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
	--service-cluster-ip-range=10.96.0.0/24 --allow-privileged=false \
	--client-ca-file="$P/ca.crt" --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
	--kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
	--kubelet-certificate-authority="$P/ca.crt" --kubelet-preferred-address-types=Hostname \
	--service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
	--service-account-issuer=https://kubernetes.default.svc.cluster.local \
	--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction
waitfor kube-apiserver curl -sf --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" https://127.0.0.1:6443/readyz
start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig="$P/controller-manager.kubeconfig" \
	--authentication-kubeconfig="$P/controller-manager.kubeconfig" --authorization-kubeconfig="$P/controller-manager.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
	--service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
	--cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
	--enable-hostpath-provisioner=true
start kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$P/scheduler.kubeconfig" \
	--authentication-kubeconfig="$P/scheduler.kubeconfig" --authorization-kubeconfig="$P/scheduler.kubeconfig" \
	--bind-address=127.0.0.1 --leader-elect=false
start kubelet "$BIN/kubelet" --config="$K/etc/kubelet.yaml" --kubeconfig="$P/kubelet.kubeconfig" \
	--root-dir="$K/var/kubelet" --hostname-override="$NODE"
KC="$BIN/kubectl --kubeconfig=$P/admin.kubeconfig"
waitfor node-Ready sh -c "$KC get node $NODE -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
waitfor default-serviceaccount $KC get serviceaccount default
# a storage class for the sandboxes' kept files: the controller-manager's
# own hostPath provisioner (one node, directories under /tmp/hostpath_pv)
$KC apply -f - >/dev/null <<EOY
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: agentkernel-hostpath}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
EOY
echo "cluster up in $(echo "$(date +%s.%N) - $t0" | bc) s" >&2
echo "$P/admin.kubeconfig"
