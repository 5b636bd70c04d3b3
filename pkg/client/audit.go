package client

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// AuditQuery selects records of an audit log. The zero value is the last
// records (the server's default number) of the global log.
type AuditQuery struct {
	// Sandbox selects that sandbox's log instead of the global one.
	Sandbox string
	// Since keeps only records at or after it.
	Since time.Time
	// Limit is how many of the last records (0: the server's default).
	Limit int
}

// AuditLog returns the last records of an audit log, oldest first.
func (c *Client) AuditLog(ctx context.Context, q AuditQuery) (api.AuditLog, error) {
	v := url.Values{}
	if q.Sandbox != "" {
		v.Set("sandbox", q.Sandbox)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out api.AuditLog
	err := c.call(ctx, "GET", "/audit", v, nil, &out)
	return out, err
}

// VerifyAudit checks the hash chain of the global audit log, or of a
// sandbox's ("" for the global one). A broken log is not an error: the
// result's OK is false and Broken names the first broken record.
func (c *Client) VerifyAudit(ctx context.Context, sandbox string) (api.AuditVerification, error) {
	var v url.Values
	if sandbox != "" {
		v = url.Values{"sandbox": {sandbox}}
	}
	var out api.AuditVerification
	err := c.call(ctx, "GET", "/audit/verify", v, nil, &out)
	return out, err
}
