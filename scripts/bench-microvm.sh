#!/usr/bin/env bash
# Measures the microvm backend on this host (see docs/BENCHMARKS.md,
# "microVM"), labelled with the accelerator in use (KVM, or TCG software
# emulation, whose numbers say nothing about hardware virtualisation):
#   (a) time to agent ready: `sandbox create --backend microvm`, one after
#       the other, CREATE_N times (the CLI's wall time, and the backend's
#       own boot time from the supervisor's log);
#   (b) `agentkernel run --backend microvm -- true` end to end (hyperfine,
#       RUNS runs after 1 warm-up; daemon already running), cold
#       (--no-pool) and from a full warm pool of one microVM;
#   (c) host memory of one idle microVM beyond its guest RAM: QEMU's
#       resident memory outside the guest-RAM mapping, and the supervisor's.
# Private AGENTKERNEL_HOME and daemon; removes what it made; rerunnable
# unchanged on a KVM host. Needs root, qemu-system-x86, hyperfine, jq and
# `agentkernel setup` having filled /var/cache/agentkernel (it runs setup).
#
# Environment: RUNS (default 10), CREATE_N (10), MEM_MB (512),
# OUT (default /tmp/agentkernel-bench), NO_BUILD=1 (use bin/ as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib-drain.sh
ROOT=$PWD
AK=$ROOT/bin/agentkernel
RUNS=${RUNS:-10}
CREATE_N=${CREATE_N:-10}
MEM_MB=${MEM_MB:-512}
OUT=${OUT:-/tmp/agentkernel-bench}

die() { echo "bench-microvm: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
for t in qemu-system-x86_64 hyperfine jq go; do
  command -v "$t" >/dev/null || die "$t is missing; run scripts/setup.sh"
done
if [ -z "${NO_BUILD:-}" ]; then make -s build; fi
mkdir -p "$OUT"
export AGENTKERNEL_HOME
AGENTKERNEL_HOME=$(mktemp -d /tmp/ak-vmbench.XXXXXX)
cleanup() {
  drain_pools "$AK"
  "$AK" sandbox list --json 2>/dev/null | jq -r '.[].name' | while read -r n; do "$AK" sandbox remove "$n" >/dev/null 2>&1 || true; done
  if [ -f "$AGENTKERNEL_HOME/run/daemon.pid" ]; then kill "$(cat "$AGENTKERNEL_HOME/run/daemon.pid")" 2>/dev/null || true; sleep 1; fi
  rm -rf "$AGENTKERNEL_HOME"
}
trap cleanup EXIT

"$AK" setup | tee "$OUT/microvm-setup.txt"
"$AK" sandbox list >/dev/null # starts the daemon
"$AK" sandbox create vmb-warm --backend microvm >/dev/null
ACCEL=$("$AK" sandbox info --json vmb-warm | jq -r .accelerator)
"$AK" sandbox remove vmb-warm >/dev/null
LABEL=$(echo "$ACCEL" | tr a-z A-Z)
[ "$ACCEL" = tcg ] && LABEL="TCG (software emulation, NOT hardware speed)"
echo "accelerator: $LABEL"

# (a) time to agent ready.
ms() { echo $(( $(date +%s%N) / 1000000 )); }
: > "$OUT/microvm-create.txt"
for i in $(seq 1 "$CREATE_N"); do
  t0=$(ms); "$AK" sandbox create "vmb-$i" --backend microvm >/dev/null; t1=$(ms)
  uuid=$("$AK" sandbox info --json "vmb-$i" | jq -r .uuid | tr -d -)
  boot=$(grep -o 'msg="microVM started".*boot=[0-9.]*[mµ]*s' "$AGENTKERNEL_HOME/sandboxes/$uuid/supervisor.log" | grep -o 'boot=[0-9.]*[mµ]*s' | tail -1)
  echo "$((t1 - t0)) $boot" >> "$OUT/microvm-create.txt"
  "$AK" sandbox remove "vmb-$i" >/dev/null
done
sort -n "$OUT/microvm-create.txt" | awk '{a[NR]=$1; b[NR]=$2} END {printf "create (CLI wall, ms): min %d  p50 %d  max %d   backend %s (median run)\n", a[1], a[int((NR+1)/2)], a[NR], b[int((NR+1)/2)]}' | tee "$OUT/microvm-create-summary.txt"

# (b) run -- true end to end, cold and from a pool of one (before each
# pooled run, untimed, wait for the pool to be full again).
"$AK" pool set --backend microvm 1 >/dev/null
POOL_FULL="sh -c 'until $AK pool list --json | jq -e \"all(.[]; .ready == .size and .starting == 0)\" >/dev/null; do sleep 0.05; done'"
hyperfine --shell=none --warmup 1 --runs "$RUNS" --export-json "$OUT/microvm-run.json" \
  --prepare true --prepare "$POOL_FULL" \
  -n "run --backend microvm -- true" "$AK run --backend microvm --no-pool -- true" \
  -n "run --backend microvm -- true (warm pool)" "$AK run --backend microvm -- true" | tee "$OUT/microvm-run.txt"
"$AK" pool drain --backend microvm >/dev/null

# (c) memory of an idle microVM.
"$AK" sandbox create vmb-mem --backend microvm --memory-mb "$MEM_MB" >/dev/null
sleep 10
uuid=$("$AK" sandbox info --json vmb-mem | jq -r .uuid | tr -d -)
dir=$AGENTKERNEL_HOME/sandboxes/$uuid
qpid=$(cat "$dir/qemu.pid"); spid=$(cat "$dir/supervisor.pid")
# The guest's RAM is one anonymous mapping of MEM_MB; the rest of QEMU's
# resident memory is the VMM's own: anonymous (private: heap, TCG's
# translation cache, device state) or file-backed (the kernel image, the
# initramfs, QEMU's binary and libraries: page cache, shared between VMs
# that map the same files).
awk -v want=$((MEM_MB * 1024)) '
  /^[0-9a-f]+-[0-9a-f]+ / { inram = 0; file = ($6 ~ /^\//) }
  /^Size:/ { if ($2 == want && !file) inram = 1 }
  /^Rss:/ { total += $2; if (inram) ram += $2; else if (file) fil += $2; else anon += $2 }
  /^Pss:/ { pss += $2 }
  END { printf "qemu: RSS %d MB = guest RAM touched %d MB (of %d) + anonymous %d MB + file-backed %d MB; PSS %d MB\n", total/1024, ram/1024, want/1024, anon/1024, fil/1024, pss/1024 }
' "/proc/$qpid/smaps" | tee "$OUT/microvm-mem.txt"
awk '/^Rss:/ {r += $2} /^Pss:/ {p += $2} END {printf "supervisor: RSS %d MB, PSS %d MB\n", r/1024, p/1024}' "/proc/$spid/smaps" | tee -a "$OUT/microvm-mem.txt"
"$AK" sandbox remove vmb-mem >/dev/null
echo "results in $OUT (accelerator: $LABEL)"
