#!/usr/bin/env bash
# Installs what agentkernel needs on a Debian host (bookworm): the OCI
# runtime and the tools the tests drive. Idempotent; needs root for apt.
set -euo pipefail

need=()
command -v runc >/dev/null || need+=(runc)
command -v bwrap >/dev/null || need+=(bubblewrap)
command -v unshare >/dev/null || need+=(util-linux)
command -v setpriv >/dev/null || need+=(util-linux)
command -v script >/dev/null || need+=(bsdutils)
command -v hyperfine >/dev/null || need+=(hyperfine)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install: ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
runc --version | head -1
