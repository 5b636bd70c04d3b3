#!/usr/bin/env bash
# Measures sandbox_run of `true` through MCP (stdio: agentkernel mcp-server;
# Streamable HTTP: serve's /mcp) against the same run through the HTTP API
# (POST /run over TCP with the token), N times each, sequentially, with a
# private home and daemon; prints the medians and the ratios. See "MCP" in
# docs/BENCHMARKS.md. Needs root, node and npm (it installs the official
# TypeScript MCP SDK into /var/cache/agentkernel/mcp-sdk if needed), and
# bin/agentkernel (make build). Not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
PORT=${PORT:-18891}
SDK=/var/cache/agentkernel/mcp-sdk
[ -d "$SDK/node_modules/@modelcontextprotocol/sdk" ] ||
  npm install --no-audit --no-fund --prefix "$SDK" @modelcontextprotocol/sdk@1.32.2 >/dev/null
export AGENTKERNEL_HOME=$(mktemp -d /tmp/akbm.XXXXXX)
cleanup() {
  [ -f "$AGENTKERNEL_HOME/run/daemon.pid" ] && kill "$(cat "$AGENTKERNEL_HOME/run/daemon.pid")" 2>/dev/null || true
  sleep 1; rm -rf "$AGENTKERNEL_HOME"
}
trap cleanup EXIT
bin/agentkernel serve --port "$PORT" >"$AGENTKERNEL_HOME/serve.log" 2>&1 &
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.1; done
TOKEN=$(cat "$AGENTKERNEL_HOME/token")
bin/agentkernel run -- true >/dev/null # warm caches
script=$AGENTKERNEL_HOME/bench.mjs
cat >"$script" <<JS
import { Client } from "file://$SDK/node_modules/@modelcontextprotocol/sdk/dist/esm/client/index.js";
import { StdioClientTransport } from "file://$SDK/node_modules/@modelcontextprotocol/sdk/dist/esm/client/stdio.js";
import { StreamableHTTPClientTransport } from "file://$SDK/node_modules/@modelcontextprotocol/sdk/dist/esm/client/streamableHttp.js";
const n = Number(process.env.N);
const median = (a) => { a.sort((x, y) => x - y); return a[Math.floor(a.length / 2)]; };
async function viaMCP(transport) {
  const c = new Client({ name: "bench", version: "0" });
  await c.connect(transport);
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await c.callTool({ name: "sandbox_run", arguments: { command: ["true"] } });
    if (r.isError) throw new Error(JSON.stringify(r.content));
    ms.push(performance.now() - t0);
  }
  await c.close();
  return median(ms);
}
async function viaAPI() {
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await fetch("http://127.0.0.1:${PORT}/run", { method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer ${TOKEN}" },
      body: JSON.stringify({ command: ["true"] }) });
    await r.text();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}
const api = await viaAPI();
const stdio = await viaMCP(new StdioClientTransport({ command: "$PWD/bin/agentkernel", args: ["mcp-server"], env: process.env }));
const http = await viaMCP(new StreamableHTTPClientTransport(new URL("http://127.0.0.1:${PORT}/mcp"),
  { requestInit: { headers: { Authorization: "Bearer ${TOKEN}" } } }));
const f = (x) => x.toFixed(1) + " ms";
console.log("| HTTP API POST /run | " + f(api) + " | 1.00x |");
console.log("| MCP stdio sandbox_run | " + f(stdio) + " | " + (stdio / api).toFixed(2) + "x |");
console.log("| MCP Streamable HTTP sandbox_run | " + f(http) + " | " + (http / api).toFixed(2) + "x |");
JS
echo "bench-mcp: $N runs each, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
N=$N node "$script"
