#!/usr/bin/env bash
# Measures agentkernel's overhead on this host (see docs/BENCHMARKS.md):
#   (a) `agentkernel run -- true` end to end, daemon already running, from
#       a full warm pool and cold (--no-pool), against raw `runc run` of the
#       same OCI bundle the daemon generates, and against
#       `bwrap --unshare-all … true`, in one hyperfine run;
#       plus the create/exec/remove split of a run;
#   (b) exec round trip of `true` in a running sandbox, p50/p99 over 500
#       calls (buffered POST …/exec and the streaming WebSocket exec);
#   (c) 20 concurrent sandbox creates, p50/p99.
# It uses a private AGENTKERNEL_HOME and daemon, removes everything it made,
# and can be rerun. Not run in CI. Needs root, runc, bwrap, hyperfine, jq
# (scripts/setup.sh installs them) and the binaries (`make bench` builds).
#
# Environment: RUNS (hyperfine runs per command, default 50), EXEC_N (500),
# CREATE_N (20), OUT (where the results go, default /tmp/agentkernel-bench),
# NO_BUILD=1 (measure the binaries already in bin/ instead of rebuilding).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib-drain.sh
ROOT=$PWD
AK=$ROOT/bin/agentkernel
RUNS=${RUNS:-50}
EXEC_N=${EXEC_N:-500}
CREATE_N=${CREATE_N:-20}
OUT=${OUT:-/tmp/agentkernel-bench}

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (sandboxes are runc containers)"
for t in runc bwrap hyperfine jq go; do
  command -v "$t" >/dev/null || die "$t is missing; run scripts/setup.sh"
done
# Measure what the tree builds now (NO_BUILD=1 keeps the binaries in bin/).
if [ "${NO_BUILD:-}" != 1 ] || [ ! -x "$AK" ]; then
  make build >/dev/null || die "make build failed"
fi

WORK=$(mktemp -d /tmp/akb.XXXXXX)
export AGENTKERNEL_HOME=$WORK/h
unset AGENTKERNEL_BASE_URL AGENTKERNEL_API_KEY
RAW_ROOT=$WORK/runc
RAW_CG=/agentkernel/akbench-raw-$$
mkdir -p "$OUT" "$RAW_ROOT"

cleanup() {
  set +e
  if [ -S "$AGENTKERNEL_HOME/run/agentkernel.sock" ]; then
  drain_pools "$AK"
    for n in $("$AK" sandbox list --json 2>/dev/null | jq -r '.[].name'); do
      "$AK" sandbox remove "$n" >/dev/null 2>&1
    done
  fi
  if [ -f "$AGENTKERNEL_HOME/run/daemon.pid" ]; then
    pid=$(cat "$AGENTKERNEL_HOME/run/daemon.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  for id in $(runc --root "$RAW_ROOT" list -q 2>/dev/null); do
    runc --root "$RAW_ROOT" delete --force "$id" >/dev/null 2>&1
  done
  for d in /sys/fs/cgroup/*"$RAW_CG" /sys/fs/cgroup/"$RAW_CG"; do [ -d "$d" ] && rmdir "$d"; done 2>/dev/null
  if grep -q " $WORK" /proc/self/mountinfo; then
    echo "bench: NOT removing $WORK: something is still mounted under it" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: building the latency tool" >&2
go build -o "$WORK/akbench" ./test/bench

echo "bench: starting a daemon in $AGENTKERNEL_HOME" >&2
"$AK" sandbox list >/dev/null
"$AK" run -- true   # the first sandbox warms the image and page caches
SOCK=$AGENTKERNEL_HOME/run/agentkernel.sock

# The raw runc bundle is the one the daemon generated for a real sandbox
# (same rootfs, mounts, user namespace and ID maps, seccomp, cgroup limits),
# with the agent replaced by `true`, a cgroup of its own, and a fresh
# network namespace instead of the one the supervisor prepared for the
# sandbox's network gateway.
"$AK" sandbox create bench-ref >/dev/null
uuid=$("$AK" sandbox info --json bench-ref | jq -r .uuid)
ref=$AGENTKERNEL_HOME/sandboxes/${uuid//-/}/bundle/config.json  # state dirs drop the dashes
[ -f "$ref" ] || die "no bundle at $ref"
mkdir -p "$WORK/bundle"
jq --arg cg "$RAW_CG" '
  .process.args = ["/bin/true"] | .process.terminal = false |
  .linux.cgroupsPath = $cg | del(.hooks) |
  .linux.namespaces |= map(if .type == "network" then del(.path) else . end)' "$ref" >"$WORK/bundle/config.json"
jq -e '[.linux.namespaces[].type] | (index("user") and index("network"))' \
  "$WORK/bundle/config.json" >/dev/null || die "the reference bundle has no user or network namespace"
runc --root "$RAW_ROOT" run --bundle "$WORK/bundle" akb-check </dev/null \
  || die "raw runc cannot run the derived bundle ($WORK/bundle/config.json)"

BWRAP="bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin \
--symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev --tmpfs /tmp /bin/true"

# Before each pooled run (untimed), wait until the pool is full again and
# making nothing: the pooled number is a claim from a ready pool, as a
# user's command that follows another by more than a refill gets it.
POOL_FULL="sh -c 'until $AK pool list --json | jq -e \"all(.[]; .ready == .size and .starting == 0)\" >/dev/null; do sleep 0.02; done'"
echo "bench: (a) run -- true from the pool, cold, vs runc run vs bwrap, $RUNS runs each" >&2
hyperfine --style basic --shell=none --warmup 5 --runs "$RUNS" \
  --export-json "$OUT/run.json" --export-markdown "$OUT/run.md" \
  --prepare "$POOL_FULL" --prepare true --prepare true --prepare true \
  -n "agentkernel run -- true (warm pool)" "$AK run -- true" \
  -n "agentkernel run -- true" "$AK run --no-pool -- true" \
  -n "runc run (same bundle)" "runc --root $RAW_ROOT run --bundle $WORK/bundle akb-raw-$$" \
  -n "bwrap --unshare-all true" "$BWRAP" >&2

echo "bench: (a) where the time of a run goes, $RUNS runs" >&2
"$WORK/akbench" -socket "$SOCK" -n "$RUNS" -prefix bench- phases >"$OUT/phases.tsv"

echo "bench: (b) exec round trips, $EXEC_N each" >&2
"$WORK/akbench" -socket "$SOCK" -sandbox bench-ref -n "$EXEC_N" exec >"$OUT/exec.tsv"
"$WORK/akbench" -socket "$SOCK" -sandbox bench-ref -n "$EXEC_N" stream | tail -n +2 >>"$OUT/exec.tsv"

echo "bench: (c) $CREATE_N concurrent creates" >&2
"$WORK/akbench" -socket "$SOCK" -n "$CREATE_N" create 2>"$OUT/create.log" >"$OUT/create.tsv"
cat "$OUT/create.log" >&2

# The summary, in the form docs/BENCHMARKS.md uses.
med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000' "$OUT/run.json"; }
ak=$(med "agentkernel run -- true"); rc=$(med "runc run (same bundle)"); bw=$(med "bwrap --unshare-all true")
pl=$(med "agentkernel run -- true (warm pool)")
col() { awk -F'\t' -v n="$1" -v c="$2" '$1 == n { print $c }' "$OUT/$3"; }
{
  echo "## Results of $(date -u +%Y-%m-%d) on $(hostname)"
  echo
  echo "Host: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r)," \
    "$(runc --version | head -1), $(bwrap --version), $(hyperfine --version)." \
    "Load average before the run: $LOAD. Binary: $("$AK" --version)."
  echo
  echo "(a) One command in a fresh sandbox (hyperfine --shell=none, $RUNS runs after 5 warm-up):"
  echo
  cat "$OUT/run.md"
  echo
  awk -v a="$ak" -v r="$rc" -v b="$bw" -v p="$pl" 'BEGIN { printf "Median ratios: warm pool/bwrap %.2fx (target <= 2x), cold agentkernel/runc %.2fx (target <= 1.1x), agentkernel/bwrap %.2fx, runc/bwrap %.2fx, cold/warm pool %.2fx.\n", p/b, a/r, a/b, r/b, a/p }'
  echo
  echo "Where the time of a run goes (test/bench phases: the API calls \`run\` makes, $RUNS in a row):"
  echo
  echo "| phase | p50 ms | p90 ms | p99 ms | max ms | mean ms |"
  echo "|---|---|---|---|---|---|"
  for m in create exec remove total; do
    echo "| $m | $(col $m 3 phases.tsv) | $(col $m 4 phases.tsv) | $(col $m 5 phases.tsv) | $(col $m 6 phases.tsv) | $(col $m 7 phases.tsv) |"
  done
  echo
  echo "(b) Exec round trip of \`true\` in a running sandbox, $EXEC_N calls after 20 warm-up (target p50 < 3 ms):"
  echo
  echo "| exec | p50 ms | p90 ms | p99 ms | max ms | mean ms |"
  echo "|---|---|---|---|---|---|"
  for m in exec stream; do
    echo "| $m | $(col $m 3 exec.tsv) | $(col $m 4 exec.tsv) | $(col $m 5 exec.tsv) | $(col $m 6 exec.tsv) | $(col $m 7 exec.tsv) |"
  done
  echo
  echo "(c) $CREATE_N concurrent creates ($(sed -n 's/.*took \([0-9]*\) ms wall.*/\1/p' "$OUT/create.log") ms wall):"
  echo
  echo "| p50 ms | p90 ms | p99 ms | max ms | mean ms |"
  echo "|---|---|---|---|---|"
  echo "| $(col create 3 create.tsv) | $(col create 4 create.tsv) | $(col create 5 create.tsv) | $(col create 6 create.tsv) | $(col create 7 create.tsv) |"
} | tee "$OUT/summary.md"
echo "bench: results in $OUT" >&2
