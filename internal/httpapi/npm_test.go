package httpapi

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestUpstreamNodeClient installs upstream's published npm client
// ("agentkernel") and runs testdata/npm/compat.mjs with it against this
// server, proving that its users need no change. It needs node, npm and
// the npm registry, so it runs only with AGENTKERNEL_NPM_TEST=1;
// AGENTKERNEL_NPM_VERSION picks the client version (default 0.18.1, the
// one this was written against).
func TestUpstreamNodeClient(t *testing.T) {
	if os.Getenv("AGENTKERNEL_NPM_TEST") != "1" {
		t.Skip("set AGENTKERNEL_NPM_TEST=1 to run upstream's npm client against the server (needs node, npm and the npm registry)")
	}
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("AGENTKERNEL_NPM_TEST=1 but %s is not installed: %v", bin, err)
		}
	}
	version := os.Getenv("AGENTKERNEL_NPM_VERSION")
	if version == "" {
		version = "0.18.1"
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--silent", "agentkernel@"+version)
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install agentkernel@%s: %v\n%s", version, err, out)
	}
	script, err := os.ReadFile(filepath.Join("testdata", "npm", "compat.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compat.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, HandlerOptions{Token: "npm-token"})
	node := exec.CommandContext(ctx, "node", "compat.mjs")
	node.Dir = dir
	node.Env = append(os.Environ(), "AGENTKERNEL_BASE_URL="+e.srv.URL, "AGENTKERNEL_API_KEY=npm-token")
	out, err := node.CombinedOutput()
	t.Logf("node output:\n%s", out)
	if err != nil {
		t.Fatalf("the npm client failed: %v", err)
	}
	// The server saw what the script did.
	e.fake.mu.Lock()
	defer e.fake.mu.Unlock()
	if len(e.fake.sandboxes) != 0 {
		t.Errorf("sandboxes left behind: %v", e.fake.sandboxes)
	}
	if len(e.fake.procs) != 8 { // exec ×3, run, runStream, batch ×2, session
		t.Errorf("only %d processes ran", len(e.fake.procs))
	}
}

// TestOpenAPIDocumentIsValid validates /openapi.json against the OpenAPI
// 3.1 schema with an npm validator (@seriousme/openapi-schema-validator);
// like TestUpstreamNodeClient it runs only with AGENTKERNEL_NPM_TEST=1.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	if os.Getenv("AGENTKERNEL_NPM_TEST") != "1" {
		t.Skip("set AGENTKERNEL_NPM_TEST=1 to validate the OpenAPI document with an npm validator")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--silent", "@seriousme/openapi-schema-validator@2")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "openapi.json"), openAPIDocument(), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `import { Validator } from "@seriousme/openapi-schema-validator";
const r = await new Validator().validate(new URL("./openapi.json", import.meta.url).pathname);
if (!r.valid) { console.log(JSON.stringify(r.errors, null, 1)); process.exit(1); }
console.log("valid");`
	if err := os.WriteFile(filepath.Join(dir, "validate.mjs"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	node := exec.CommandContext(ctx, "node", "validate.mjs")
	node.Dir = dir
	if out, err := node.CombinedOutput(); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v\n%s", err, out)
	}
}
