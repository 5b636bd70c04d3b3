#!/usr/bin/env bash
# Runs every Go fuzz target of the module for FUZZTIME each (default 60s),
# JOBS at a time (default: the number of cores), and fails if any finds a
# crash. New crashers land in the package's testdata/fuzz, to be committed
# with their fix. `make fuzz` calls this.
#   ONLY=REGEXP        only the targets whose "DIR NAME" matches
#   WORKERS=N          fuzzing processes per target (go test -parallel)
#   LONG=REGEXP        the targets whose "DIR NAME" matches run for LONGTIME
#                      (default 60s) instead of FUZZTIME
#   KEEP_CORPUS=1      afterwards, copy each target's generated corpus (the
#                      inputs that found new coverage, kept in GOCACHE) into
#                      its package's testdata/fuzz, so later runs and CI
#                      start from it
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-60s}
LONGTIME=${LONGTIME:-60s}
JOBS=${JOBS:-$(nproc)}
mapfile -t targets < <(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  dir=$(dirname "$f")
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed "s|^func |$dir |"
done | sort -u | grep -E -- "${ONLY:-.}")
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each, $JOBS at a time" >&2
log=$(mktemp -d)
run() {
  local dir=$1 name=$2 time=$FUZZTIME
  if [ -n "${LONG:-}" ] && grep -qE -- "$LONG" <<<"$dir $name"; then time=$LONGTIME; fi
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$time" ${WORKERS:+-parallel "$WORKERS"} "$dir" >"$log/${dir//\//_}.$name" 2>&1; then
    echo "ok   $dir $name ($time) $(grep -o 'execs: [0-9]*' "$log/${dir//\//_}.$name" | tail -1)"
    if [ "${KEEP_CORPUS:-}" = 1 ]; then
      local pkg; pkg=$(go list "$dir")
      local from; from="$(go env GOCACHE)/fuzz/$pkg/$name"
      if [ -d "$from" ]; then mkdir -p "$dir/testdata/fuzz/$name" && cp -n "$from"/* "$dir/testdata/fuzz/$name/" 2>/dev/null || true; fi
    fi
  else
    echo "FAIL $dir $name"; cat "$log/${dir//\//_}.$name"; return 1
  fi
}
export -f run; export FUZZTIME LONG LONGTIME log WORKERS KEEP_CORPUS
printf '%s\n' "${targets[@]}" | xargs -P "$JOBS" -L 1 bash -c 'run "$0" "$1"'
