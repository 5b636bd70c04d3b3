package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// mcpSDKVersion is the official TypeScript MCP SDK the test drives the
// server with; it is installed once into mcpSDKDir.
const (
	mcpSDKVersion = "1.32.2"
	mcpSDKDir     = "/var/cache/agentkernel/mcp-sdk"
)

// mcpScript is the MCP client: it spawns `agentkernel mcp-server` over
// stdio, exercises the tools and prints a JSON summary on its last line.
const mcpScript = `
import { Client } from "SDK/client/index.js";
import { StdioClientTransport } from "SDK/client/stdio.js";
import { StreamableHTTPClientTransport } from "SDK/client/streamableHttp.js";

// MCP_URL: the daemon's /mcp over Streamable HTTP with the token; else
// mcp-server over stdio.
const transport = process.env.MCP_URL
  ? new StreamableHTTPClientTransport(new URL(process.env.MCP_URL),
      { requestInit: { headers: { Authorization: "Bearer " + process.env.MCP_TOKEN } } })
  : new StdioClientTransport({ command: process.env.AK_BIN, args: ["mcp-server", ...JSON.parse(process.env.MCP_ARGS || "[]")],
      env: process.env, stderr: "inherit" });
const client = new Client({ name: "agentkernel-it", version: "0" });
await client.connect(transport);
const out = {};
const { tools } = await client.listTools();
out.tools = tools.map((t) => t.name).sort();
out.allHaveInputSchema = tools.every((t) => t.inputSchema && t.inputSchema.type === "object");
const opts = { timeout: 120000 };
const call = async (name, args) => {
  const r = await client.callTool({ name, arguments: args }, undefined, opts);
  if (r.isError) throw new Error(name + ": " + JSON.stringify(r.content));
  return r.structuredContent;
};
const hello = await call("sandbox_run", { command: ["echo", "hello"] });
out.hello = hello.stdout;
out.helloExit = hello.exit_code;
const total = 1572864; // 1.5 MiB of "a"
const big = await call("sandbox_run", { command: "head -c " + total + " /dev/zero | tr '\\0' a" });
const m = big.stdout.match(/^(a+)\n\[\.\.\. agentkernel: (\d+) bytes truncated \.\.\.\]\n(a+)$/);
const kept = m ? m[1].length + m[3].length : 0;
out.big = {
  length: Buffer.byteLength(big.stdout), truncated: !!big.truncated, kept,
  note: !!m && Number(m[2]) === total - kept,
  headTail: !!m && Math.abs(m[1].length - m[3].length) <= 1,
};
const sb = await call("sandbox_create", { name: process.env.SB_NAME });
out.created = sb.name;
await call("sandbox_file_write", { name: sb.name, path: "/tmp/mcp.txt", content: "written over MCP\n" });
out.readBack = (await call("sandbox_file_read", { name: sb.name, path: "/tmp/mcp.txt" })).content;
out.exec = (await call("sandbox_exec", { name: sb.name, command: "cat /tmp/mcp.txt" })).stdout;
out.listed = (await call("sandbox_list", {})).sandboxes.some((s) => s.name === sb.name && s.session);
out.dir = (await call("sandbox_file_list", { name: sb.name, path: "/tmp" })).entries.map((e) => e.name);
const bg = await call("sandbox_exec_detach", { name: sb.name, command: "echo from-background; sleep 1" });
for (let i = 0; i < 50; i++) {
  const st = await call("sandbox_exec_status", { name: sb.name, id: bg.id });
  if (st.status !== "running") { out.bgStatus = st.status; break; }
  await new Promise((r) => setTimeout(r, 200));
}
out.bgLogs = (await call("sandbox_exec_logs", { name: sb.name, id: bg.id })).stdout;
// Progress: a command printing for 3 s, called with a progress token.
const progress = [];
const ticking = await client.callTool({ name: "sandbox_exec", arguments: { name: sb.name, command: "for i in 1 2 3; do echo tick $i; sleep 1; done" } },
  undefined, { timeout: 120000, onprogress: (p) => progress.push(p) });
out.ticking = ticking.structuredContent.stdout;
out.progress = progress.map((p) => p.message);
// The policy's domains: one outside them is refused, nothing created.
const refused = await client.callTool({ name: "sandbox_run", arguments: { command: "true", allow: ["evil.example"] } });
out.refusedDomain = refused.isError ? refused.content.map((c) => c.text).join("") : "not refused";
// Directories both ways, within the allowed host directory.
const hostDir = process.env.HOST_DIR;
out.uploaded = (await call("sandbox_upload_dir", { name: sb.name, host_path: hostDir + "/proj", path: "/tmp/up" })).copied;
out.uploadedFile = (await call("sandbox_exec", { name: sb.name, command: "cat /tmp/up/proj/src/main.txt" })).stdout;
await call("sandbox_exec", { name: sb.name, command: "mkdir -p /tmp/result && echo built > /tmp/result/out.txt" });
out.downloaded = (await call("sandbox_download_dir", { name: sb.name, path: "/tmp/result", host_path: hostDir + "/back" })).copied;
const outside = await client.callTool({ name: "sandbox_download_dir", arguments: { name: sb.name, path: "/tmp/result", host_path: "/etc/agentkernel-mcp" } });
out.outsideRefused = !!outside.isError;
// Snapshots (their restore is TestSnapshotRestoreFork's): this sandbox is
// on the host image, which has no layers to snapshot, and says so.
const hostSnap = await client.callTool({ name: "snapshot_take", arguments: { sandbox: sb.name } });
out.hostSnapRefused = hostSnap.isError ? hostSnap.content.map((c) => c.text).join("") : "not refused";
const memSnap = await client.callTool({ name: "snapshot_take", arguments: { sandbox: sb.name, memory: true } });
out.memoryRefused = memSnap.isError ? memSnap.content.map((c) => c.text).join("") : "not refused";
out.snapshotsListed = Array.isArray((await call("snapshot_list", {})).snapshots);
const noSnap = await client.callTool({ name: "snapshot_get", arguments: { name: "no-such-snap" } });
// A source the sandbox's policy does not reach: the create fails, saying so.
const src = await client.callTool({ name: "sandbox_create", arguments: { source_url: "http://no-such-host.test/r.git" } });
out.sourceRefused = src.isError ? src.content.map((c) => c.text).join("") : "created";
out.noSnap = noSnap.isError ? noSnap.content.map((c) => c.text).join("") : "found";
// A cancelled call kills its command.
const ac = new AbortController();
const long = client.callTool({ name: "sandbox_exec", arguments: { name: sb.name, command: "sleep 300" } },
  undefined, { signal: ac.signal, timeout: 120000 }).catch(() => "cancelled");
await new Promise((r) => setTimeout(r, 1500));
ac.abort();
out.cancelled = await long;
for (let i = 0; i < 25; i++) {
  await new Promise((r) => setTimeout(r, 200));
  out.sleepsLeft = (await call("sandbox_exec", { name: sb.name, command: "ps -eo args | grep -c '^sleep 300' || true" })).stdout.trim();
  if (out.sleepsLeft === "0") break;
}
if (transport.terminateSession) await transport.terminateSession(); // ends the HTTP session
await client.close();
console.log(JSON.stringify(out));
`

// mcpSDK installs the TypeScript SDK once and returns its package
// directory, or skips t when node or npm is missing.
func mcpSDK(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("integration: %s is not installed; TestMCPStdio needs node and npm to run the TypeScript MCP SDK client", tool)
		}
	}
	pkg := filepath.Join(mcpSDKDir, "node_modules", "@modelcontextprotocol", "sdk")
	var meta struct{ Version string }
	if b, err := os.ReadFile(filepath.Join(pkg, "package.json")); err == nil && json.Unmarshal(b, &meta) == nil && meta.Version == mcpSDKVersion {
		return pkg
	}
	if err := os.MkdirAll(mcpSDKDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", mcpSDKDir, "@modelcontextprotocol/sdk@"+mcpSDKVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("integration: npm install @modelcontextprotocol/sdk@%s failed (no registry?): %v\n%s", mcpSDKVersion, err, out)
	}
	return pkg
}

func TestMCPStdio(t *testing.T) {
	requireEnv(t)
	hostDir := t.TempDir()
	args, _ := json.Marshal([]string{"--allow-domain", "example.org", "--allow-dir", hostDir})
	runMCPClient(t, shared, "it-mcp-stdio", hostDir, "MCP_ARGS="+string(args))
}

// TestMCPHTTP: the same client over Streamable HTTP at serve's /mcp, with
// the API token; without it 401, and a foreign Origin 403.
func TestMCPHTTP(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	hostDir := t.TempDir()
	conf := fmt.Sprintf("[mcp]\nallowed_domains = [\"example.org\"]\nhost_dirs = [%q]\n", hostDir)
	if err := os.WriteFile(filepath.Join(e.home, "daemon.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	base, tok := ocServe(t, e) // serve --port, its token
	initialize := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"it","version":"0"}}}`
	post := func(header map[string]string) int {
		req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(initialize))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := post(nil); st != http.StatusUnauthorized {
		t.Errorf("POST /mcp without the token: %d, want 401", st)
	}
	if st := post(map[string]string{"Authorization": "Bearer " + tok, "Origin": "http://evil.example"}); st != http.StatusForbidden {
		t.Errorf("POST /mcp from a foreign Origin: %d, want 403", st)
	}
	runMCPClient(t, e, "it-mcp-http", hostDir, "MCP_URL="+base+"/mcp", "MCP_TOKEN="+tok)
}

// runMCPClient runs the TypeScript client against e's daemon (stdio, or
// the transport env says) and checks its summary.
func runMCPClient(t *testing.T, e *env, name, hostDir string, env ...string) {
	t.Helper()
	pkg := mcpSDK(t)
	if err := os.MkdirAll(filepath.Join(hostDir, "proj", "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "proj", "src", "main.txt"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "client.mjs")
	src := strings.ReplaceAll(mcpScript, `"SDK/`, `"file://`+filepath.Join(pkg, "dist", "esm")+`/`)
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Env = append(append(e.environ(), "AK_BIN="+akBin, "SB_NAME="+name, "HOST_DIR="+hostDir), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", name) })
	if err := cmd.Run(); err != nil {
		t.Fatalf("MCP client: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var got struct {
		Tools              []string
		AllHaveInputSchema bool
		Hello              string
		HelloExit          int
		Big                struct {
			Length    int
			Truncated bool
			Kept      int
			Note      bool
			HeadTail  bool
		}
		Created, ReadBack, Exec string
		Listed                  bool
		Dir                     []string
		BgStatus, BgLogs        string
		Cancelled, SleepsLeft   string
		Ticking                 string
		Progress                []string
		RefusedDomain           string
		Uploaded, UploadedFile  string
		Downloaded              string
		OutsideRefused          bool
		HostSnapRefused         string
		MemoryRefused, NoSnap   string
		SourceRefused           string
		SnapshotsListed         bool
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("summary: %v\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	want := "sandbox_create sandbox_download_dir sandbox_exec sandbox_exec_detach sandbox_exec_kill sandbox_exec_logs sandbox_exec_status sandbox_extend_ttl " +
		"sandbox_file_list sandbox_file_read sandbox_file_write sandbox_list sandbox_network_log sandbox_pause sandbox_remove sandbox_resume sandbox_run sandbox_start sandbox_stop sandbox_upload_dir " +
		"snapshot_delete snapshot_get snapshot_list snapshot_restore snapshot_take"
	if strings.Join(got.Tools, " ") != want || !got.AllHaveInputSchema {
		t.Errorf("tools %v (every one with an input schema: %v), want %s", got.Tools, got.AllHaveInputSchema, want)
	}
	if got.Hello != "hello\n" || got.HelloExit != 0 {
		t.Errorf("sandbox_run echo hello: stdout %q exit %d", got.Hello, got.HelloExit)
	}
	// 1.5 MiB over the default 1 MiB limit: cut in the middle, with the
	// note counting the bytes cut, the whole within the limit.
	b := got.Big
	if !b.Truncated || !b.Note || !b.HeadTail || b.Length > 1<<20 || b.Kept < (1<<20)-100 {
		t.Errorf("1.5 MiB output: %+v", b)
	}
	if got.Created != name || got.ReadBack != "written over MCP\n" || got.Exec != got.ReadBack || !got.Listed {
		t.Errorf("sandbox_create/file_write/file_read/exec/list: %+v", got)
	}
	if !slices.Contains(got.Dir, "mcp.txt") || got.BgStatus != "completed" || got.BgLogs != "from-background\n" {
		t.Errorf("sandbox_file_list %v, background command %q with output %q", got.Dir, got.BgStatus, got.BgLogs)
	}
	if got.Ticking != "tick 1\ntick 2\ntick 3\n" || len(got.Progress) < 2 || !strings.Contains(got.Progress[len(got.Progress)-1], "bytes of output") {
		t.Errorf("sandbox_exec with a progress token: output %q, progress %q", got.Ticking, got.Progress)
	}
	if !strings.Contains(got.RefusedDomain, `domain "evil.example" is not allowed`) {
		t.Errorf("sandbox_run allow evil.example: %q", got.RefusedDomain)
	}
	if got.Uploaded != "/tmp/up/proj" || got.UploadedFile != "from the host\n" || !got.OutsideRefused {
		t.Errorf("sandbox_upload_dir: %q (file %q); download outside refused: %v", got.Uploaded, got.UploadedFile, got.OutsideRefused)
	}
	if b, err := os.ReadFile(filepath.Join(got.Downloaded, "out.txt")); string(b) != "built\n" || got.Downloaded != filepath.Join(hostDir, "back", "result") {
		t.Errorf("sandbox_download_dir to %q: %q %v", got.Downloaded, b, err)
	}
	if _, err := os.Stat("/etc/agentkernel-mcp"); err == nil {
		t.Errorf("sandbox_download_dir wrote outside the allowed directory")
	}
	if !strings.Contains(got.HostSnapRefused, "host image") || !strings.Contains(got.NoSnap, "no-such-snap") || !got.SnapshotsListed {
		t.Errorf("snapshot tools: take on the host image %q, get of a missing one %q, list answered %v", got.HostSnapRefused, got.NoSnap, got.SnapshotsListed)
	}
	if !strings.Contains(got.SourceRefused, "cloning http://no-such-host.test/r.git") || !strings.Contains(got.SourceRefused, "network policy") {
		t.Errorf("sandbox_create with a source its policy does not reach: %q", got.SourceRefused)
	}
	if !strings.Contains(got.MemoryRefused, "memory snapshots are not supported") {
		t.Errorf("snapshot_take memory: %q", got.MemoryRefused)
	}
	if got.Cancelled != "cancelled" || got.SleepsLeft != "0" {
		t.Errorf("a cancelled sandbox_exec: %q, sleep processes left %q", got.Cancelled, got.SleepsLeft)
	}
	// The session is over: the sandbox it created goes (over HTTP the
	// cleanup runs as the session closes, so give it a moment).
	gone := waitFor(20*time.Second, func() bool {
		for _, sb := range e.list(t) {
			if sb.Name == name || sb.Labels["agentkernel.mcp.session"] != "" {
				return false
			}
		}
		return true
	})
	if !gone {
		t.Errorf("sandboxes left after the MCP session ended: %+v", e.list(t))
	}
}
