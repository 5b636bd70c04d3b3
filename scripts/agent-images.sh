#!/usr/bin/env bash
# Builds the AI coding agents' images (agentkernel setup --agents) into a
# machine-wide cache home, /var/cache/agentkernel/agents-home unless
# AGENT_IMAGES_HOME says otherwise. The agent tests copy the images from
# there (hard links) into their own homes instead of building them. Images
# are named by a hash of their inputs, so a rerun builds only what changed.
#
# A host whose egress passes a TLS-inspecting proxy (as CI's does) trusts
# that proxy's CA through certificates added under
# /usr/local/share/ca-certificates; the build's sandboxes are given the
# same ones (daemon.toml [network] sandbox_ca_files) so that they can
# reach the npm registry. Needs root and bin/agentkernel (make build).
set -euo pipefail
cd "$(dirname "$0")/.."
home=${AGENT_IMAGES_HOME:-/var/cache/agentkernel/agents-home}
mkdir -p "$home"
chmod 700 "$home"
cas=()
for f in /usr/local/share/ca-certificates/*.crt; do
  [ -f "$f" ] && cas+=("\"$f\"")
done
if [ ${#cas[@]} -gt 0 ]; then
  printf '[network]\nsandbox_ca_files = [%s]\n' "$(IFS=,; echo "${cas[*]}")" >"$home/daemon.toml"
else
  rm -f "$home/daemon.toml"
fi
stop() {
  if [ -f "$home/run/daemon.pid" ]; then
    pid=$(cat "$home/run/daemon.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
}
stop # a daemon of an older binary would keep serving
trap stop EXIT
# No warm pool in this home: its daemon only builds, and pooled sandboxes
# would outlive it (they survive a daemon's stop by design).
AGENTKERNEL_DEFAULT_POOL_SIZE=0 AGENTKERNEL_HOME=$home bin/agentkernel setup --agents
