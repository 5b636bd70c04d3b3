#!/usr/bin/env bash
# Measures pause+resume of a running container sandbox through the daemon
# (POST /sandboxes/NAME/pause then /resume over the Unix socket, with curl)
# against raw `runc pause` + `runc resume` of the same container, in the
# same run, with hyperfine; prints both and the ratio. See "Pause and
# resume" in docs/BENCHMARKS.md. Needs root, runc, hyperfine, curl and
# bin/agentkernel (make build). Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}
export AGENTKERNEL_HOME=$(mktemp -d /tmp/akbp.XXXXXX)
cleanup() {
  bin/agentkernel sandbox remove bp >/dev/null 2>&1 || true
  [ -f "$AGENTKERNEL_HOME/run/daemon.pid" ] && kill "$(cat "$AGENTKERNEL_HOME/run/daemon.pid")" 2>/dev/null || true
  pkill -f "serve.*$AGENTKERNEL_HOME" 2>/dev/null || true
  sleep 1; rm -rf "$AGENTKERNEL_HOME"
}
trap cleanup EXIT
bin/agentkernel sandbox create bp >/dev/null
bin/agentkernel exec bp -- sh -c 'nohup sh -c "while :; do sleep 1; done" >/dev/null 2>&1 &' >/dev/null
uuid=$(bin/agentkernel sandbox info --json bp | sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p' | head -1)
sock=$AGENTKERNEL_HOME/run/agentkernel.sock
root=$AGENTKERNEL_HOME/runc
api="curl -fsS --unix-socket $sock -X POST http://agentkernel/sandboxes/bp/pause >/dev/null && curl -fsS --unix-socket $sock -X POST http://agentkernel/sandboxes/bp/resume >/dev/null"
raw="runc --root $root pause $uuid && runc --root $root resume $uuid"
hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$AGENTKERNEL_HOME/h.json" "sh -c '$api'" "sh -c '$raw'" >&2
python3 - "$AGENTKERNEL_HOME/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
ours, raw = r[0]["median"] * 1000, r[1]["median"] * 1000
print(f"pause+resume via the API: median {ours:.1f} ms; raw runc pause+resume: {raw:.1f} ms; ratio {ours/raw:.2f}x")
PY
