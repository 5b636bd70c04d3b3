#!/usr/bin/env bash
# Measures gvisor memory snapshots through the daemon against raw runsc on
# the same sandbox and bundle, in the same run; prints medians and ratios.
# See "Memory snapshots" in docs/BENCHMARKS.md. Needs root, runsc (scripts/
# runsc.sh), /bin/busybox and bin/agentkernel (make build). Not run in CI.
#
#   ours take:     agentkernel snapshot take bm --memory (agent suspended,
#                  pause, runsc checkpoint, files captured, digest, resume)
#   raw take:      runsc checkpoint --leave-running of the same sandbox (its
#                  agent suspended once beforehand: runsc cannot checkpoint
#                  the agent's host socket otherwise)
#   ours restore:  agentkernel snapshot restore --as NEW (a new sandbox:
#                  disk, overlay, netns and gateway, runsc restore, agent)
#   raw restore:   runsc restore --detach of the same bundle from a raw
#                  checkpoint under a new container id
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
ak=$PWD/bin/agentkernel
runsc=$(ls /var/cache/agentkernel/runsc/*/runsc 2>/dev/null | tail -1 || true)
[ -n "$runsc" ] || runsc=$(command -v runsc)
export AGENTKERNEL_HOME=$(mktemp -d /tmp/akbm.XXXXXX)
work=$(mktemp -d /tmp/akbm-raw.XXXXXX)
. scripts/lib-drain.sh
cleanup() {
  drain_pools "$ak"
  for s in $("$ak" sandbox list --json 2>/dev/null | python3 -c 'import json,sys; [print(s["name"]) for s in json.load(sys.stdin)]' 2>/dev/null); do
    "$ak" sandbox remove "$s" >/dev/null 2>&1 || true
  done
  [ -f "$AGENTKERNEL_HOME/run/daemon.pid" ] && kill "$(cat "$AGENTKERNEL_HOME/run/daemon.pid")" 2>/dev/null || true
  sleep 1; rm -rf "$AGENTKERNEL_HOME" "$work"
}
trap cleanup EXIT

root=$work/rootfs
mkdir -p "$root"/{bin,tmp,etc,root}
cp /bin/busybox "$root/bin/"
ln -s busybox "$root/bin/sh"
echo 'root:x:0:0::/root:/bin/sh' >"$root/etc/passwd"
"$ak" image import bm-base "$root" >/dev/null
"$ak" sandbox create bm --image bm-base -B gvisor >/dev/null
"$ak" exec -d bm -- /bin/sh -c 'i=0; while :; do i=$((i+1)); echo $i > /root/count; /bin/busybox sleep 0.1; done' >/dev/null
sleep 1

now() { date +%s%N; }
ms() { echo "scale=1; ($2 - $1) / 1000000" | bc; }
declare -a ours_take raw_take ours_restore raw_restore
for i in $(seq "$RUNS"); do
  t0=$(now); "$ak" snapshot take bm --memory -n "bm-$i" >/dev/null; t1=$(now)
  ours_take+=("$(ms "$t0" "$t1")")
  t0=$(now); "$ak" snapshot restore "bm-$i" --as "bmr-$i" >/dev/null; t1=$(now)
  ours_restore+=("$(ms "$t0" "$t1")")
  "$ak" sandbox remove "bmr-$i" >/dev/null
  "$ak" snapshot delete "bm-$i" >/dev/null
done

read -r uuid sdir < <(python3 - "$AGENTKERNEL_HOME" <<'PY'
import glob, json, sys
for p in glob.glob(sys.argv[1] + "/sandboxes/*/spec.json"):
    s = json.load(open(p))
    if s["name"] == "bm":
        print(s["id"], s["state_dir"])
PY
)
rr=$AGENTKERNEL_HOME/runsc
flags=(--root "$rr" --platform="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["platform"])' "$rr/platform.json")"
  --overlay2=none --host-uds=create --gofer-network-namespace=new --oci-seccomp)
bundle=$sdir/bundle
"$runsc" "${flags[@]}" exec "$uuid" /.agentkernel/agent --control suspend </dev/null
for i in $(seq "$RUNS"); do
  d=$work/ck-$i; mkdir "$d"
  t0=$(now); "$runsc" "${flags[@]}" checkpoint --leave-running --image-path "$d" "$uuid" </dev/null >/dev/null; t1=$(now)
  raw_take+=("$(ms "$t0" "$t1")")
  t0=$(now)
  "$runsc" "${flags[@]}" --network=sandbox restore --detach --image-path "$d" --bundle "$bundle" \
    --pid-file "$work/pid-$i" "raw-$i" </dev/null >>"$work/console.log" 2>&1
  t1=$(now)
  raw_restore+=("$(ms "$t0" "$t1")")
  "$runsc" "${flags[@]}" delete --force "raw-$i" </dev/null >/dev/null 2>&1 || true
  rm -rf "$d"
done
"$runsc" "${flags[@]}" exec "$uuid" /.agentkernel/agent --control listen </dev/null

python3 - "${ours_take[*]}" "${raw_take[*]}" "${ours_restore[*]}" "${raw_restore[*]}" <<'PY'
import statistics, sys
ot, rt, orr, rr = ([float(x) for x in a.split()] for a in sys.argv[1:5])
m = statistics.median
print(f"memory snapshot: ours median {m(ot):.0f} ms, raw runsc checkpoint {m(rt):.0f} ms, ratio {m(ot)/m(rt):.2f}x")
print(f"memory restore:  ours median {m(orr):.0f} ms, raw runsc restore {m(rr):.0f} ms, ratio {m(orr)/m(rr):.2f}x")
print(f"runs: {len(ot)}; ours take {ot}; raw take {rt}; ours restore {orr}; raw restore {rr}")
PY
