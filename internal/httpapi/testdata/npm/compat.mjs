// Drives upstream's published npm client ("agentkernel") against a Go
// test server (npm_test.go). AGENTKERNEL_BASE_URL and AGENTKERNEL_API_KEY
// come from the environment, as for any user of that client.
import assert from "node:assert/strict";
import { AgentKernel, NotFoundError, ValidationError, AuthError } from "agentkernel";

const c = new AgentKernel();
const step = (name) => console.log("step:", name);

step("health");
assert.equal(await c.health(), "ok");

step("createSandbox");
const info = await c.createSandbox("npm-box", { image: "alpine:3.20", vcpus: 1, memory_mb: 256 });
assert.equal(info.name, "npm-box");
assert.equal(info.status, "running");
await assert.rejects(c.createSandbox("bad name!"), ValidationError);

step("getSandbox / getSandboxByUuid / listSandboxes");
const got = await c.getSandbox("npm-box");
assert.equal((await c.getSandboxByUuid(got.uuid)).name, "npm-box");
assert.deepEqual((await c.listSandboxes()).map((s) => s.name), ["npm-box"]);

step("execInSandbox");
const ex = await c.execInSandbox("npm-box", ["echo", "hello", "node"], { env: ["A=1"], workdir: "/tmp" });
assert.equal(ex.output, "hello node\n");
const env = await c.execInSandbox("npm-box", ["env"], { env: ["A=1"], workdir: "/tmp", sudo: true });
// A command that exits non-zero is a failure to upstream's client (409).
step("a failing command is a failure");
await assert.rejects(c.execInSandbox("npm-box", ["exit", "3"]));
assert.equal(env.output, "A=1\n/tmp\n0\n0s\n");

step("writeFile / readFile / writeFiles / deleteFile");
assert.equal(await c.writeFile("npm-box", "tmp/hello.txt", "hello world"), "Wrote 11 bytes to /tmp/hello.txt");
assert.deepEqual(await c.readFile("npm-box", "tmp/hello.txt"), { content: "hello world", encoding: "utf8", size: 11 });
const bin = Buffer.from([0, 255, 1, 128]);
await c.writeFile("npm-box", "tmp/bin.dat", bin.toString("base64"), { encoding: "base64" });
const rb = await c.readFile("npm-box", "tmp/bin.dat");
assert.equal(rb.encoding, "base64");
assert.deepEqual(Buffer.from(rb.content, "base64"), bin);
assert.deepEqual(await c.writeFiles("npm-box", { "tmp/a.txt": "a", "/tmp/b.txt": "b" }), { written: 2 });
await c.deleteFile("npm-box", "tmp/a.txt");
await assert.rejects(c.readFile("npm-box", "tmp/a.txt"), NotFoundError);
await assert.rejects(c.readFile("npm-box", "tmp/../etc/passwd"), (e) => e instanceof ValidationError || e instanceof NotFoundError);

step("logs / extendTtl");
assert.equal((await c.getSandboxLogs("npm-box"))[0].event, "sandbox_created");
assert.ok((await c.extendTtl("npm-box", { by: "2d" })).expires_at);

step("detached commands");
const det = await c.execDetached("npm-box", ["sleep"]);
assert.equal(det.status, "running");
assert.equal((await c.detachedStatus("npm-box", det.id)).id, det.id);
assert.deepEqual(await c.detachedLogs("npm-box", det.id, "stderr"), { stdout: "", stderr: "err of " + det.id });
assert.equal((await c.detachedList("npm-box")).length, 1);
await c.detachedKill("npm-box", det.id);

step("run / runStream / batchRun");
assert.equal((await c.run(["echo", "run"])).output, "run\n");
const events = [];
for await (const ev of c.runStream(["echo", "streamed"])) events.push(ev);
assert.deepEqual(events.map((e) => e.type), ["started", "progress", "progress", "output", "done"]);
assert.match(String(events[0].data.sandbox), /^run-[0-9a-f]{8}$/);
assert.equal(events[3].data.data, "streamed\n");
assert.equal(events[3].data.stream, "stdout");
assert.equal(events[4].data.exit_code, 0);
const batch = await c.batchRun([{ command: ["echo", "x"] }, { command: ["echo", "y"] }]);
assert.deepEqual(batch.results.map((r) => [r.output, r.error]), [["x\n", null], ["y\n", null]]);

step("removeSandbox");
await c.removeSandbox("npm-box");
await assert.rejects(c.getSandbox("npm-box"), NotFoundError);

step("sandbox session");
{
  const sb = await c.sandbox("npm-session");
  assert.equal((await sb.run(["echo", "s"])).output, "s\n");
  await sb.remove();
}

step("auth");
const wrong = new AgentKernel({ apiKey: "wrong-key" });
await assert.rejects(wrong.listSandboxes(), AuthError);
assert.equal(await wrong.health(), "ok");

console.log("npm client compatible");
