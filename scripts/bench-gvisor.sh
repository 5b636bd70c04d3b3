#!/usr/bin/env bash
# Measures the gvisor backend's overhead on this host (see
# docs/BENCHMARKS.md, "gVisor"): `agentkernel run --backend gvisor -- true`
# end to end, daemon already running, against raw `runsc run` of the same
# OCI bundle the daemon generated, with the same runsc binary, platform and
# flags, in one hyperfine run; the ratio is of the medians.
# Private AGENTKERNEL_HOME and daemon; removes what it made; rerunnable.
# Not run in CI. Needs root, hyperfine, jq and runsc (scripts/runsc.sh).
#
# Environment: RUNS (default 20), OUT (default /tmp/agentkernel-bench),
# NO_BUILD=1 (use bin/ as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
AK=$ROOT/bin/agentkernel
RUNS=${RUNS:-20}
OUT=${OUT:-/tmp/agentkernel-bench}

die() { echo "bench-gvisor: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
for t in hyperfine jq go; do
  command -v "$t" >/dev/null || die "$t is missing; run scripts/setup.sh"
done
RUNSC=$(scripts/runsc.sh) || die "no runsc (scripts/runsc.sh failed)"
if [ "${NO_BUILD:-}" != 1 ] || [ ! -x "$AK" ]; then
  make build >/dev/null || die "make build failed"
fi

WORK=$(mktemp -d /tmp/akgb.XXXXXX)
export AGENTKERNEL_HOME=$WORK/h
unset AGENTKERNEL_BASE_URL AGENTKERNEL_API_KEY AGENTKERNEL_GVISOR_PLATFORM
RAW_ROOT=$WORK/runsc
RAW_CG=/agentkernel/akbench-gvraw-$$
mkdir -p "$OUT" "$RAW_ROOT"

cleanup() {
  set +e
  if [ -S "$AGENTKERNEL_HOME/run/agentkernel.sock" ]; then
    for n in $("$AK" sandbox list --json 2>/dev/null | jq -r '.[].name'); do
      "$AK" sandbox remove "$n" >/dev/null 2>&1
    done
    # The default container pool's sandboxes are no one's: drained, they
    # go before the daemon exits (their supervisors would outlive it).
    "$AK" pool drain >/dev/null 2>&1
  fi
  if [ -f "$AGENTKERNEL_HOME/run/daemon.pid" ]; then
    pid=$(cat "$AGENTKERNEL_HOME/run/daemon.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  for id in $("$RUNSC" --root "$RAW_ROOT" list -q 2>/dev/null); do
    "$RUNSC" --root "$RAW_ROOT" delete --force "$id" >/dev/null 2>&1
  done
  for d in /sys/fs/cgroup/*"$RAW_CG" /sys/fs/cgroup/"$RAW_CG"; do [ -d "$d" ] && rmdir "$d"; done 2>/dev/null
  if grep -q " $WORK" /proc/self/mountinfo; then
    echo "bench-gvisor: NOT removing $WORK: something is still mounted under it" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
"$AK" sandbox list >/dev/null # starts the daemon
"$AK" run --backend gvisor -- true >/dev/null # probes the platform, warms the caches
PLATFORM=$({ "$AK" doctor 2>/dev/null || true; } | sed -n 's/.*gvisor: isolation.*platform \([a-z]*\).*/\1/p')
[ -n "$PLATFORM" ] || die "doctor names no gvisor platform"

# The raw bundle is the one the daemon generated for a real gvisor sandbox
# (same rootfs, mounts, user namespace and ID maps, seccomp, cgroup
# limits), with the agent replaced by `true`, a cgroup of its own and a
# fresh network namespace (runsc --network=none, as the daemon's sandboxes
# without a gateway get) instead of the one prepared for the gateway.
"$AK" sandbox create gvb-ref --backend gvisor >/dev/null
uuid=$("$AK" sandbox info --json gvb-ref | jq -r .uuid)
ref=$AGENTKERNEL_HOME/sandboxes/${uuid//-/}/bundle/config.json
[ -f "$ref" ] || die "no bundle at $ref"
mkdir -p "$WORK/bundle"
jq --arg cg "$RAW_CG" '
  .process.args = ["/bin/true"] | .process.terminal = false |
  .linux.cgroupsPath = $cg | del(.hooks) |
  .linux.namespaces |= map(if .type == "network" then del(.path) else . end)' "$ref" >"$WORK/bundle/config.json"
# The flags the backend gives runsc (internal/backend/container/gvisor.go).
RAW="$RUNSC --root $RAW_ROOT --platform=$PLATFORM --overlay2=none --host-uds=create --gofer-network-namespace=new --oci-seccomp --network=none"
$RAW run --bundle "$WORK/bundle" akgb-check </dev/null \
  || die "raw runsc cannot run the derived bundle ($WORK/bundle/config.json)"

echo "bench-gvisor: run -- true vs runsc run, platform $PLATFORM, $RUNS runs each" >&2
hyperfine --style basic --shell=none --warmup 3 --runs "$RUNS" \
  --export-json "$OUT/gvisor-run.json" --export-markdown "$OUT/gvisor-run.md" \
  -n "agentkernel run --backend gvisor -- true" "$AK run --backend gvisor --no-pool -- true" \
  -n "runsc run (same bundle)" "$RAW run --bundle $WORK/bundle akgb-raw-$$" >&2

med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$OUT/gvisor-run.json"; }
ak=$(med "agentkernel run --backend gvisor -- true"); rs=$(med "runsc run (same bundle)")
{
  echo "## gVisor results of $(date -u +%Y-%m-%d) on $(hostname)"
  echo
  echo "Host: $(nproc) cores, Linux $(uname -r), runsc $RUNSC (platform $PLATFORM)," \
    "$(hyperfine --version). Load average before the run: $LOAD. Binary: $("$AK" --version)."
  echo
  cat "$OUT/gvisor-run.md"
  echo
  awk -v a="$ak" -v r="$rs" 'BEGIN { printf "Ratio of medians, agentkernel / raw runsc: %.2fx (%.1f ms / %.1f ms)\n", a / r, a, r }'
} | tee "$OUT/gvisor-summary.md"
