#!/usr/bin/env bash
# Measures density (see docs/BENCHMARKS.md, "Density"): N idle container
# sandboxes (default 200) on this host, then
#   - the memory each costs beyond the processes a caller runs in it: the
#     proportional set size (PSS) of its supervisor (runtime shim, network
#     gateway, agent link) and of its guest agent (its init), summed over
#     all sandboxes and divided by N; and the daemon's RSS;
#   - whether the daemon still answers promptly: `agentkernel sandbox list`
#     and GET /health with N sandboxes (hyperfine, 20 runs each).
# Private AGENTKERNEL_HOME and daemon; removes what it made. Not run in CI.
# Needs root, runc, hyperfine, jq. Environment: N (200), PAR (4 creates at
# once), OUT (/tmp/agentkernel-bench), NO_BUILD=1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib-drain.sh
AK=$PWD/bin/agentkernel
N=${N:-200}
PAR=${PAR:-4}
OUT=${OUT:-/tmp/agentkernel-bench}
die() { echo "bench-density: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
for t in runc hyperfine jq; do command -v "$t" >/dev/null || die "$t is missing; run scripts/setup.sh"; done
if [ -z "${NO_BUILD:-}" ]; then make -s build; fi
mkdir -p "$OUT"
export AGENTKERNEL_HOME
AGENTKERNEL_HOME=$(mktemp -d /tmp/ak-dens.XXXXXX)
export AGENTKERNEL_DEFAULT_POOL_SIZE=0
cleanup() {
  set +e
  drain_pools "$AK"
  "$AK" sandbox list --json 2>/dev/null | jq -r '.[].name' | xargs -r -P "$PAR" -n 1 "$AK" sandbox remove >/dev/null 2>&1
  if [ -f "$AGENTKERNEL_HOME/run/daemon.pid" ]; then
    pid=$(cat "$AGENTKERNEL_HOME/run/daemon.pid"); kill "$pid" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$AGENTKERNEL_HOME"
}
trap cleanup EXIT
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
"$AK" sandbox list >/dev/null
echo "bench-density: creating $N idle sandboxes, $PAR at a time" >&2
t0=$(date +%s.%N)
seq -f "dens-%g" 1 "$N" | xargs -P "$PAR" -n 1 "$AK" sandbox create --no-pool >/dev/null
t1=$(date +%s.%N)
sleep 10 # let start-up garbage be collected
pss() { awk '/^Pss:/ {s += $2} END {print s+0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
sup=0; agent=0; count=0
for f in "$AGENTKERNEL_HOME"/sandboxes/*/supervisor.pid; do
  p=$(cat "$f"); [ -d "/proc/$p" ] || continue
  sup=$((sup + $(pss "$p"))); count=$((count + 1))
  for c in $(pgrep -P "$p"); do agent=$((agent + $(pss "$c"))); done
done
dpid=$(cat "$AGENTKERNEL_HOME/run/daemon.pid")
drss=$(awk '/^VmRSS:/ {print $2}' "/proc/$dpid/status")
SOCK=$AGENTKERNEL_HOME/run/agentkernel.sock
hyperfine --style basic --shell=none --warmup 3 --runs 20 --export-json "$OUT/density-list.json" \
  -n "sandbox list ($N sandboxes)" "$AK sandbox list" \
  -n "GET /health ($N sandboxes)" "curl -s --unix-socket $SOCK http://d/health" >&2
med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median * 1000 | . * 10 | round / 10' "$OUT/density-list.json"; }
{
  echo "## Density, $(date -u +%Y-%m-%d) on $(hostname)"
  echo
  echo "$N idle container sandboxes ($count supervisors found), created $PAR at a time in $(printf %.1f "$(echo "$t1 - $t0" | bc)") s; load average before: $LOAD."
  echo
  echo "| per sandbox | PSS MiB |"
  echo "|---|---:|"
  awk -v s="$sup" -v a="$agent" -v n="$count" 'BEGIN { printf "| supervisor (shim, gateway, agent link) | %.2f |\n| guest agent (the sandbox'"'"'s own init) | %.2f |\n| both | %.2f |\n", s/n/1024, a/n/1024, (s+a)/n/1024 }'
  echo
  echo "Daemon RSS: $((drss / 1024)) MiB. \`sandbox list\` median $(med "sandbox list ($N sandboxes)") ms; GET /health median $(med "GET /health ($N sandboxes)") ms."
} | tee "$OUT/density.md"
