package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func (f *fakeService) AuditLog(_ context.Context, sandbox string, since time.Time, limit int) (api.AuditLog, error) {
	if sandbox != "" {
		if _, err := f.sandbox(sandbox); err != nil {
			return api.AuditLog{}, err
		}
	}
	recs := []json.RawMessage{
		json.RawMessage(`{"seq":1,"time":"2026-01-01T00:00:00Z","type":"audit_start","prev":"00","hash":"aa"}`),
		json.RawMessage(`{"seq":2,"time":"2026-01-02T00:00:00Z","type":"command_finished","sandbox":"sb1","command":["ls"],"prev":"aa","hash":"bb"}`),
	}
	if !since.IsZero() && since.After(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)) {
		recs = recs[1:]
	}
	if limit > 0 && limit < len(recs) {
		recs = recs[len(recs)-limit:]
	}
	return api.AuditLog{Path: "/home/audit/audit.jsonl", Records: recs}, nil
}

func (f *fakeService) VerifyAudit(_ context.Context, sandbox string) (api.AuditVerification, error) {
	if sandbox == "broken" {
		return api.AuditVerification{Records: 1, Broken: &api.AuditBreak{File: "audit.jsonl", Line: 2, Seq: 2, Reason: "altered"}}, nil
	}
	return api.AuditVerification{OK: true, Records: 2, FirstSeq: 1, LastSeq: 2}, nil
}

// exerciseAuditRoutes drives GET /audit and /audit/verify through the SDK
// (TestEveryRouteThroughClient): query parameters arrive, bad ones are
// refused.
func exerciseAuditRoutes(t *testing.T, c *client.Client, ctx context.Context, name string) {
	t.Helper()
	lg, err := c.AuditLog(ctx, client.AuditQuery{})
	if err != nil || len(lg.Records) != 2 || lg.Path == "" {
		t.Fatalf("audit log: %+v %v", lg, err)
	}
	lg, err = c.AuditLog(ctx, client.AuditQuery{Sandbox: name, Since: time.Date(2026, 1, 1, 13, 0, 0, 0, time.UTC), Limit: 5})
	if err != nil || len(lg.Records) != 1 {
		t.Fatalf("audit log since: %+v %v", lg, err)
	}
	if _, err := c.AuditLog(ctx, client.AuditQuery{Sandbox: "nope"}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing sandbox: %v", err)
	}
	if _, err := c.AuditLog(ctx, client.AuditQuery{Sandbox: "../x"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("bad name: %v", err)
	}
	if v, err := c.VerifyAudit(ctx, ""); err != nil || !v.OK || v.Records != 2 {
		t.Fatalf("verify: %+v %v", v, err)
	}
	if v, err := c.VerifyAudit(ctx, "broken"); err != nil || v.OK || v.Broken == nil || v.Broken.Line != 2 {
		t.Fatalf("verify broken: %+v %v", v, err)
	}
}
