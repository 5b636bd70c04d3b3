package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentkernel/agentkernel/internal/audit"
	"github.com/agentkernel/agentkernel/internal/backend"
)

// TestAuditEndpoint: records the daemon posts land, chained, in the
// sandbox's audit log, which verifies against the supervisor's head.
func TestAuditEndpoint(t *testing.T) {
	dir, done, ready := startSupervisor(t, startFunc(func(ctx context.Context, _ *backend.NetworkAttachment) (backend.Instance, error) {
		return startProc(t.TempDir())
	}))
	if ready != "ok" {
		t.Fatalf("ready line %q", ready)
	}
	c := Dial(dir)
	ctx := context.Background()
	fields, _ := json.Marshal(map[string]any{"argv": []string{"echo", "hi"}, "exit_code": 0})
	if err := c.Audit(ctx, AuditRecord{Type: "command_finished", Sandbox: "dev", SandboxID: "u-1", Fields: fields}); err != nil {
		t.Fatal(err)
	}
	// A claim renames the supervisor's own records.
	if err := c.Audit(ctx, AuditRecord{Type: TypeClaimed, Sandbox: "claimed", SandboxID: "u-1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Audit(ctx, AuditRecord{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Audit(ctx, AuditRecord{}); err == nil {
		t.Error("a record without a type was taken")
	}
	if _, err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, AuditLogFile)
	res, err := audit.Verify(nil, p)
	if err != nil || res.Records != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	b, _ := os.ReadFile(p)
	if !bytes.Contains(b, []byte(`"type":"command_finished","sandbox":"dev","sandbox_id":"u-1","argv":["echo","hi"],"exit_code":0`)) {
		t.Fatalf("%s", b)
	}
	if !bytes.Contains(b, []byte(`"type":"x","sandbox":"claimed",`)) {
		t.Fatalf("after the claim: %s", b)
	}
}
