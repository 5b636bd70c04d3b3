package mcp

import (
	"context"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// spanFake records the span context each Exec ran under.
type spanFake struct {
	*fakeClient
	got trace.SpanContext
}

func (f *spanFake) Exec(ctx context.Context, name string, req api.ExecRequest) (api.ExecResponse, error) {
	f.got = trace.SpanContextFromContext(ctx)
	return f.fakeClient.Exec(ctx, name, req)
}

// TestToolCallTraceparent: a traceparent in a tool call's _meta is the
// context the tool reaches the daemon under (tracing off here: it passes
// through as it came).
func TestToolCallTraceparent(t *testing.T) {
	f := &spanFake{fakeClient: newFake()}
	cs, _ := connect(t, f, Policy{})
	call(t, cs, "sandbox_create", map[string]any{"name": "t"}, nil)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "sandbox_exec",
		Arguments: map[string]any{"name": "t", "command": "true"},
		Meta:      mcp.Meta{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	if err != nil || res.IsError {
		t.Fatalf("sandbox_exec: %v %s", err, errText(res))
	}
	if f.got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || f.got.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("the tool ran under %v, want the caller's traceparent", f.got)
	}
}
