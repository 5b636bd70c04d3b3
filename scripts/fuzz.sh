#!/usr/bin/env bash
# Runs every Go fuzz target of the module for FUZZTIME each (default 60s),
# JOBS at a time (default: the number of cores), and fails if any finds a
# crash. New crashers land in the package's testdata/fuzz, to be committed
# with their fix. `make fuzz` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-60s}
JOBS=${JOBS:-$(nproc)}
mapfile -t targets < <(grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
  dir=$(dirname "$f")
  grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed "s|^func |$dir |"
done | sort -u)
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each, $JOBS at a time" >&2
log=$(mktemp -d)
run() {
  local dir=$1 name=$2
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$dir" >"$log/${dir//\//_}.$name" 2>&1; then
    echo "ok   $dir $name"
  else
    echo "FAIL $dir $name"; cat "$log/${dir//\//_}.$name"; return 1
  fi
}
export -f run; export FUZZTIME log
printf '%s\n' "${targets[@]}" | xargs -P "$JOBS" -L 1 bash -c 'run "$0" "$1"'
