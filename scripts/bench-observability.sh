#!/usr/bin/env bash
# Measures what observability costs an exec (see docs/BENCHMARKS.md): the
# round trip of `true` in a running sandbox (buffered POST …/exec and the
# streaming exec, p50/p99 over EXEC_N calls) on two daemons side by side:
#   off: AGENTKERNEL_AUDIT=0 and no trace exporter;
#   on:  the audit log (global and per sandbox, hash-chained) and
#        OpenTelemetry traces exported over OTLP/HTTP to a local sink, with
#        every exec in a trace (an API span, an exec span, TRACEPARENT in
#        the sandbox and the exec's context handed to its gateway).
# The two daemons run at once in homes of their own, and the measurements
# alternate off, on, off, on … ROUNDS times, so that drift of the host hits
# both alike; the report gives each round and the ratio of medians.
# Not run in CI. Needs root, runc, jq, go (scripts/setup.sh installs them).
#
# Environment: EXEC_N (300), ROUNDS (3), ON (both; `audit` or `trace` to
# measure one of the two alone against off), OUT (default
# /tmp/agentkernel-bench-observability), NO_BUILD=1 (measure bin/ as is).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib-drain.sh
ROOT=$PWD
AK=$ROOT/bin/agentkernel
EXEC_N=${EXEC_N:-300}
ROUNDS=${ROUNDS:-3}
ON=${ON:-both}
case $ON in both | audit | trace) ;; *) echo "bench: ON=$ON: want both, audit or trace" >&2; exit 2 ;; esac
OUT=${OUT:-/tmp/agentkernel-bench-observability}

die() { echo "bench: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (sandboxes are runc containers)"
for t in runc jq go; do
  command -v "$t" >/dev/null || die "$t is missing; run scripts/setup.sh"
done
if [ "${NO_BUILD:-}" != 1 ] || [ ! -x "$AK" ]; then
  make build >/dev/null || die "make build failed"
fi
# A build without tracing (serve --otel-endpoint) has nothing to compare.
"$AK" serve --help 2>/dev/null | grep -q -- --otel-endpoint ||
  die "this build has no serve --otel-endpoint; nothing to compare"

WORK=$(mktemp -d /tmp/akbo.XXXXXX)
mkdir -p "$OUT"
unset AGENTKERNEL_BASE_URL AGENTKERNEL_API_KEY OTEL_EXPORTER_OTLP_ENDPOINT
SINK_PID=

# ak HOME ARGS… runs the CLI against the daemon of HOME.
ak() { local h=$1; shift; AGENTKERNEL_HOME=$h "$AK" "$@"; }

stop_daemon() {
  local h=$1
  [ -S "$h/run/agentkernel.sock" ] || return 0
  drain_pools "env AGENTKERNEL_HOME=$h $AK"
  for n in $(ak "$h" sandbox list --json 2>/dev/null | jq -r '.[].name'); do
    ak "$h" sandbox remove "$n" >/dev/null 2>&1
  done
  if [ -f "$h/run/daemon.pid" ]; then
    local pid
    pid=$(cat "$h/run/daemon.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
}

cleanup() {
  set +e
  stop_daemon "$WORK/off"
  stop_daemon "$WORK/on"
  [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
  if grep -q " $WORK" /proc/self/mountinfo; then
    echo "bench: NOT removing $WORK: something is still mounted under it" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

echo "bench: building the latency tool" >&2
go build -o "$WORK/akbench" ./test/bench

# A free loopback port for the sink.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 14318)
"$WORK/akbench" -listen "127.0.0.1:$PORT" otlp-sink 2>"$WORK/sink.log" &
SINK_PID=$!

# start_daemon HOME [ENV=… …] -- [SERVE ARGS…]
start_daemon() {
  local h=$1; shift
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  mkdir -p "$h"
  env AGENTKERNEL_HOME="$h" AGENTKERNEL_DEFAULT_POOL_SIZE=0 "${envs[@]}" \
    "$AK" serve --no-tcp "$@" >"$h.log" 2>&1 &
  for _ in $(seq 300); do
    [ -S "$h/run/agentkernel.sock" ] && ak "$h" sandbox list >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$h.log" >&2
  die "the daemon of $h did not start"
}

echo "bench: starting the daemons (off, on)" >&2
start_daemon "$WORK/off" AGENTKERNEL_AUDIT=0 --
on_audit=AGENTKERNEL_AUDIT=1 on_trace=(--otel-endpoint "http://127.0.0.1:$PORT")
[ "$ON" = trace ] && on_audit=AGENTKERNEL_AUDIT=0
[ "$ON" = audit ] && on_trace=()
start_daemon "$WORK/on" "$on_audit" -- "${on_trace[@]}"
for h in "$WORK/off" "$WORK/on"; do
  ak "$h" run -- true >/dev/null   # warms the image and page caches
  ak "$h" sandbox create bench-ref >/dev/null
done

: >"$OUT/rounds.tsv"
for r in $(seq "$ROUNDS"); do
  for mode in off on; do
    for m in exec stream; do
      echo "bench: round $r, $mode, $m x $EXEC_N" >&2
      "$WORK/akbench" -socket "$WORK/$mode/run/agentkernel.sock" -sandbox bench-ref -n "$EXEC_N" "$m" |
        tail -n +2 | sed "s/^/$r\t$mode\t/" >>"$OUT/rounds.tsv"
    done
  done
done

# The "on" daemon must really have traced and audited what was measured:
# a run that exported nothing, or wrote no audit record, measured nothing.
kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true; SINK_PID=
if [ "$ON" != audit ]; then
  grep -q 'took [1-9][0-9]* exports' "$WORK/sink.log" || die "the sink got no spans: $(cat "$WORK/sink.log")"
fi
if [ "$ON" != trace ]; then
  records=$(ak "$WORK/on" audit --sandbox bench-ref --last 10000 --json | grep -c command || true)
  [ "$records" -ge "$((ROUNDS * EXEC_N))" ] || die "the on daemon's audit log holds $records exec records, want ≥ $((ROUNDS * EXEC_N))"
  ak "$WORK/on" audit verify --sandbox bench-ref >&2 || die "the audit log does not verify"
fi
[ ! -s "$WORK/off/audit/audit.jsonl" ] || die "the off daemon wrote an audit log"

# Report: medians of p50 and p99 over the rounds, and their ratios.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
{
  echo "| exec ($EXEC_N calls x $ROUNDS rounds), on = $ON | off p50 ms | on p50 ms | p50 on/off | off p99 ms | on p99 ms | p99 on/off |"
  echo "|---|---|---|---|---|---|---|"
  for m in exec stream; do
    p50off=$(awk -v m=$m '$2=="off" && $3==m {print $5}' "$OUT/rounds.tsv" | median)
    p50on=$(awk -v m=$m '$2=="on" && $3==m {print $5}' "$OUT/rounds.tsv" | median)
    p99off=$(awk -v m=$m '$2=="off" && $3==m {print $7}' "$OUT/rounds.tsv" | median)
    p99on=$(awk -v m=$m '$2=="on" && $3==m {print $7}' "$OUT/rounds.tsv" | median)
    echo "| $m | $p50off | $p50on | $(awk -v a="$p50on" -v b="$p50off" 'BEGIN{printf "%.2fx", a/b}') | $p99off | $p99on | $(awk -v a="$p99on" -v b="$p99off" 'BEGIN{printf "%.2fx", a/b}') |"
  done
  echo
  echo "Rounds (round, mode, measurement, n, p50, p90, p99, max, mean in ms):"
  echo '```'
  cat "$OUT/rounds.tsv"
  echo '```'
  echo "Sink: $(cat "$WORK/sink.log")"
} | tee "$OUT/report.md"
