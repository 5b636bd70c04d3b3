package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/audit"
	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// TestAuditLogs: events reach the global log with their fields (env
// names, no values); a sandbox's log is found in its state directory and,
// once it is removed, where keepSandboxAudit put it; verify reports a
// broken record as a result.
func TestAuditLogs(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	layout := paths.Layout{Home: home}
	st, err := store.Open(filepath.Join(home, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := audit.Open(layout.AuditLog(), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	m := NewManager(Config{Store: st, Layout: layout, Audit: w})
	defer m.Close()

	const uuid = "0b7e1c1e-7d2c-4cab-8c04-bfe1d7be201c"
	if _, err := st.CreateSandbox(ctx, store.Sandbox{UUID: uuid, Name: "dev", Status: api.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	m.event(uuid, "dev", "command_finished", map[string]any{"command": []string{"ls"}, "exit_code": 0, "env_names": envNames([]string{"TOKEN=s3cret"})})
	m.event(uuid, pooledNamePrefix+"x", "sandbox_created", nil) // not audited
	lg, err := m.AuditLog(ctx, "", time.Time{}, 0)
	if err != nil || len(lg.Records) != 2 || !strings.Contains(string(lg.Records[1]), `"env_names":["TOKEN"]`) || strings.Contains(string(lg.Records[1]), "s3cret") {
		t.Fatalf("global log: %v %s", err, lg.Records)
	}
	if v, err := m.VerifyAudit(ctx, ""); err != nil || !v.OK || !v.Live || v.Records != 2 {
		t.Fatalf("verify: %+v %v", v, err)
	}

	// The sandbox's own log, as its supervisor would have written it.
	dir := m.stateDir(uuid)
	os.MkdirAll(dir, 0o700)
	sw, err := audit.Open(filepath.Join(dir, supervisor.AuditLogFile), audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sw.Append(audit.Entry{Type: supervisor.TypeNetwork, Sandbox: "dev", Fields: map[string]any{"kind": "connect", "port": 22}})
	sw.Append(audit.Entry{Type: "command_finished", Sandbox: "dev"})
	sw.Close()
	if evs, err := m.NetworkLog(ctx, "dev", 0); err != nil || len(evs) != 1 || evs[0].Port != 22 {
		t.Fatalf("network log: %+v %v", evs, err)
	}

	// Removed: the log is kept and still found by name, not by a prefix.
	m.keepSandboxAudit(uuid, "dev")
	if err := st.DeleteSandbox(ctx, uuid); err != nil {
		t.Fatal(err)
	}
	kept := layout.RemovedSandboxAudit("dev", uuid)
	if lg, err := m.AuditLog(ctx, "dev", time.Time{}, 0); err != nil || lg.Path != kept || len(lg.Records) != 3 {
		t.Fatalf("removed sandbox's log: %+v %v", lg, err)
	}
	if _, err := m.AuditLog(ctx, "de", time.Time{}, 0); err == nil {
		t.Fatal("a prefix of the name found the log")
	}
	b, _ := os.ReadFile(kept)
	os.WriteFile(kept, []byte(strings.Replace(string(b), `"port":22`, `"port":23`, 1)), 0o600)
	v, err := m.VerifyAudit(ctx, "dev")
	if err != nil || v.OK || v.Live || v.Broken == nil || v.Broken.Line != 2 || !strings.Contains(v.Broken.Reason, "altered") {
		t.Fatalf("verify after an edit: %+v %v", v, err)
	}
}

func TestPruneKeptAudit(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		p := filepath.Join(dir, fmt.Sprintf("s%d-u.jsonl", i))
		os.WriteFile(p, nil, 0o600)
		os.WriteFile(p+".1", nil, 0o600)
		at := time.Now().Add(time.Duration(i) * time.Minute)
		os.Chtimes(p, at, at)
	}
	pruneKeptAudit(dir, 3)
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "s2-u.jsonl s2-u.jsonl.1 s3-u.jsonl s3-u.jsonl.1 s4-u.jsonl s4-u.jsonl.1" {
		t.Fatal(names)
	}
}
