#!/bin/bash
# Builds the five Kubernetes binaries of the test cluster (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kubectl) from the Go module
# proxy and caches them by version under $CACHE/v$KV/bin. A second run with the
# binaries present does nothing. Also installs the Debian packages the cluster
# runs on (etcd, containerd, runc, CNI plugins) and the tools up.sh needs.
#
# The scratch module requires k8s.io/kubernetes and replaces each of its
# ./staging/ modules by the published k8s.io/X at the matching v0.minor.patch,
# because the kubernetes module's own go.mod points them at directories that a
# module zip does not carry.
set -euo pipefail
KV=${KV:-1.37.2}
SV=0.${KV#*.}
CACHE=${CACHE:-/var/cache/agentkernel/k8s}
OUT=$CACHE/v$KV
BIN=$OUT/bin
export PATH=$PATH:/usr/local/go/bin

if [ "${SKIP_APT:-0}" != 1 ]; then
	need=""
	for p in etcd-server containerd runc containernetworking-plugins iptables busybox-static openssl gcc libc6-dev python3 curl; do
		dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
	done
	if [ -n "$need" ]; then
		export DEBIAN_FRONTEND=noninteractive
		# no init system here: stop postinst scripts from starting the daemons
		[ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
		apt-get update -q
		apt-get install -y -q $need
	fi
fi

cmds="kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl"
have=1
for c in $cmds; do [ -x "$BIN/$c" ] || have=0; done
if [ $have = 1 ]; then
	echo "k8s v$KV binaries cached in $BIN"
	exit 0
fi

mkdir -p "$OUT/module" "$BIN"
cd "$OUT/module"
modfile=$(go mod download -json "k8s.io/kubernetes@v$KV" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
{
	printf 'module agentkernel.local/k8sbuild\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$KV"
	# sample-* staging modules are not published and nothing we build needs them
	grep -E '^\s*k8s.io/\S+ => \./staging/' "$modfile" | awk '{print $1}' | grep -v '/sample-' |
		while read -r m; do printf '\t%s => %s v%s\n' "$m" "$m" "$SV"; done
	printf ')\n'
} >go.mod
{
	printf '//go:build tools\n\npackage tools\n\nimport (\n'
	for c in $cmds; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
	printf ')\n'
} >tools.go
go mod tidy
minor=$(echo "$KV" | cut -d. -f2)
ldf="-s -w -X k8s.io/component-base/version.gitVersion=v$KV -X k8s.io/component-base/version.gitMajor=${KV%%.*}"
ldf="$ldf -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
ldf="$ldf -X k8s.io/client-go/pkg/version.gitVersion=v$KV"
pkgs=""
for c in $cmds; do pkgs="$pkgs k8s.io/kubernetes/cmd/$c"; done
# build into a temporary directory so an interrupted build never looks cached
rm -rf "$OUT/bin.tmp"
mkdir -p "$OUT/bin.tmp"
start=$(date +%s)
CGO_ENABLED=0 go build -trimpath -ldflags "$ldf" -o "$OUT/bin.tmp/" $pkgs
for c in $cmds; do mv "$OUT/bin.tmp/$c" "$BIN/$c"; done
rmdir "$OUT/bin.tmp"
# pause.c ships in the module zip; up.sh compiles the pause image from it
cp "$(go env GOMODCACHE)/k8s.io/kubernetes@v$KV/build/pause/linux/pause.c" "$OUT/pause.c"
chmod 644 "$OUT/pause.c"
echo "built k8s v$KV in $(($(date +%s) - start)) s into $BIN"
