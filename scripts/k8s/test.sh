#!/bin/bash
# make test-k8s: brings up the single-node test cluster from the cached
# binaries (scripts/k8s/build.sh, `make k8s-binaries`), with the guest
# agent's image imported, runs the kubernetes backend's tests against it and
# tears it down, whatever the tests did. Without the cached binaries it
# skips, saying why, unless AGENTKERNEL_K8S_BUILD=1 asks it to build them
# first (about 10 minutes cold on 2 cores).
#
#   TESTS=regexp   run only the Go tests matching it (go test -run)
#   PKGS=...       only these packages (default: the backend's and test/kubernetes)
#   SKIP=regexp    tests to skip (go test -skip)
#   KEEP=1         leave the cluster up afterwards (scripts/k8s/down.sh ends it)
set -euo pipefail
S=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$S/../.." && pwd)
KV=${KV:-1.37.2}
CACHE=${CACHE:-/var/cache/agentkernel/k8s}
export PATH=$PATH:/usr/local/go/bin
cached=1
for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
	[ -x "$CACHE/v$KV/bin/$c" ] || cached=0
done
if [ $cached = 0 ] && [ "${AGENTKERNEL_K8S_BUILD:-0}" != 1 ]; then
	echo "test-k8s: skipped: the Kubernetes v$KV binaries are not cached in $CACHE/v$KV/bin; build them once with 'make k8s-binaries' (about 10 min on 2 cores) or run with AGENTKERNEL_K8S_BUILD=1"
	exit 0
fi
"$S/build.sh"
for p in etcd containerd ctr /usr/lib/cni/bridge; do
	command -v "$p" >/dev/null || { echo "test-k8s: $p missing: scripts/k8s/build.sh installs it" >&2; exit 1; }
done
work=$(mktemp -d)
finish() {
	local rc=$?
	rm -rf "$work"
	if [ "${KEEP:-0}" != 1 ]; then
		"$S/down.sh" || { echo "test-k8s: the teardown left things behind (above)" >&2; rc=1; }
	fi
	exit $rc
}
trap finish EXIT
# The guest agent reaches pods as an image of its own, imported like the
# others: no registry is involved.
mkdir -p "$work/agent"
CGO_ENABLED=0 go -C "$ROOT" build -trimpath -o "$work/agent/agentkernel-agent" ./cmd/agentkernel-agent
python3 "$S/mkimage.py" "$work/agent.tar" agentkernel.local/agent:test "$work/agent" '["/agentkernel-agent"]'
t0=$(date +%s.%N)
kubeconfig=$(EXTRA_IMAGES="$work/agent.tar" "$S/up.sh" | tail -1)
t1=$(date +%s.%N)
echo "test-k8s: cluster up in $(echo "$t1 - $t0" | bc) s"
export AGENTKERNEL_K8S_KUBECONFIG=$kubeconfig AGENTKERNEL_K8S_SECCOMP_DIR=${K:-/var/lib/agentkernel-k8s}/var/kubelet/seccomp AGENTKERNEL_K8S_AGENT_IMAGE=agentkernel.local/agent:test \
	AGENTKERNEL_K8S_IMAGE=docker.io/library/busybox:local AGENTKERNEL_K8S_STORAGE_CLASS=agentkernel-hostpath AGENTKERNEL_K8S_KUBECTL=$CACHE/v$KV/bin/kubectl
skip=${SKIP:-}
[ -z "$skip" ] || echo "test-k8s: skipping '$skip'"
go -C "$ROOT" test -count=1 -p 1 -v -timeout 30m -run "${TESTS:-.}" -skip "${skip:-^$}" ${PKGS:-./internal/backend/kubernetes/ ./test/kubernetes/}
echo "test-k8s: tests took $(echo "$(date +%s.%N) - $t1" | bc) s"
