#!/usr/bin/env bash
# Builds runsc (gVisor's OCI runtime) for the gvisor backend from the
# gvisor.dev/gvisor module at the version go.mod pins, once: the binary is
# cached at /var/cache/agentkernel/runsc/<version>/runsc and rebuilt only
# when missing. Debian's runsc (2022) runs containers here only with
# --platform=ptrace; this build also runs systrap. Prints the binary's path.
# Needs Go and the Go module proxy; about three minutes on two cores the
# first time (measured 3m00-3m26 on the development VM), nothing after.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(awk '$1 == "gvisor.dev/gvisor" { print $2 }' "$root/go.mod")
[ -n "$version" ] || { echo "runsc.sh: gvisor.dev/gvisor not in go.mod" >&2; exit 1; }
cache=${AGENTKERNEL_RUNSC_CACHE:-/var/cache/agentkernel/runsc}
out="$cache/$version/runsc"

if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "runsc.sh: needs Go (PATH=\$PATH:/usr/local/go/bin)" >&2; exit 1; }
mkdir -p "$cache/$version"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/go.mod" <<MOD
module runscbuild

go 1.24

require gvisor.dev/gvisor $version
MOD
cat >"$tmp/main.go" <<'GO'
//go:build tools

package tools

import _ "gvisor.dev/gvisor/runsc"
GO
# -mod=mod resolves the rest of the build list from the proxy; no tidy (it
# would fetch every test dependency of gvisor too).
(cd "$tmp" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$tmp/runsc" gvisor.dev/gvisor/runsc)
# Rename into place so a concurrent reader never sees half a binary.
install -m 0755 "$tmp/runsc" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
echo "$out"
