#!/usr/bin/env bash
# Measures image pulls and sandbox creation (see "Images" in
# docs/BENCHMARKS.md): `agentkernel image pull` against `skopeo copy` plus
# `umoci unpack` of the same image from the same loopback registry, and
# sandbox creation from a small and a ten times larger image. The registry
# and the timings are in test/imagebench. Not run in CI. Needs root, go,
# skopeo and umoci (Debian: apt-get install skopeo umoci).
#
# Environment: RUNS (timed pulls per tool and image, default 5), CREATES
# (timed creations per image, 10), OUT (summary file, default
# /tmp/agentkernel-bench/images.md), WORKDIR (where the store and scratch
# directories go, default /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
CREATES=${CREATES:-10}
OUT=${OUT:-/tmp/agentkernel-bench/images.md}

die() { echo "bench-images: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (sandboxes are runc containers; umoci keeps owners)"
for t in go runc skopeo umoci; do
  command -v "$t" >/dev/null || die "$t is missing (apt-get install skopeo umoci runc)"
done

WORK=$(mktemp -d "${WORKDIR:-/var/tmp}/akbi.XXXXXX")
export AGENTKERNEL_HOME=$WORK/h
unset AGENTKERNEL_BASE_URL AGENTKERNEL_API_KEY
mkdir -p "$(dirname "$OUT")"
AK=$WORK/bin/agentkernel

cleanup() {
  set +e
  if [ -f "$AGENTKERNEL_HOME/run/daemon.pid" ]; then
    pid=$(cat "$AGENTKERNEL_HOME/run/daemon.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  if grep -q " $WORK" /proc/self/mountinfo; then
    echo "bench-images: NOT removing $WORK: something is still mounted under it" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

echo "bench-images: building" >&2
CGO_ENABLED=0 go build -trimpath -o "$WORK/bin/agentkernel" ./cmd/agentkernel
CGO_ENABLED=0 go build -trimpath -o "$WORK/bin/agentkernel-agent" ./cmd/agentkernel-agent
go build -o "$WORK/imagebench" ./test/imagebench

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
"$AK" sandbox list >/dev/null   # starts the daemon
"$AK" run -- true >/dev/null    # warms the caches
echo "bench-images: measuring ($RUNS pulls per tool and image, $CREATES creates per image)" >&2
"$WORK/imagebench" -agentkernel "$AK" -runs "$RUNS" -creates "$CREATES" -work "$WORK" -out "$OUT.tmp"
{
  echo "### Results of $(date -u +%Y-%m-%d) on $(hostname)"
  echo
  echo "Host: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r)," \
       "$(skopeo --version), $(umoci --version), store on $(stat -f -c %T "$WORK");" \
       "load average $LOAD before, $(cut -d' ' -f1-3 /proc/loadavg) after."
  echo
  cat "$OUT.tmp"
} >"$OUT"
rm -f "$OUT.tmp"
cat "$OUT"
