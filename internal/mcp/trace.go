package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentkernel/agentkernel/internal/telemetry"
)

var tracer = telemetry.Tracer("mcp")

// traceToolCalls is the server's receiving middleware: each tools/call runs
// in a span "tools/call" (the tool's name an attribute: a caller may send
// any name, and span names must stay few), the child of the W3C trace context the
// caller put in the request's _meta ("traceparent", optionally
// "tracestate"; string values). The tools reach the daemon through its
// API client, which sends the context on as a traceparent header.
func traceToolCalls(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		if method != "tools/call" {
			return next(ctx, method, req)
		}
		tool := ""
		if p, ok := req.GetParams().(*mcp.CallToolParamsRaw); ok && p != nil {
			tool = p.Name
			meta := p.GetMeta()
			tp, _ := meta["traceparent"].(string)
			ts, _ := meta["tracestate"].(string)
			ctx = telemetry.ExtractTraceparent(ctx, tp, ts)
		}
		ctx, span := tracer.Start(ctx, "tools/call", trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("mcp.tool", tool)))
		defer span.End()
		res, err := next(ctx, method, req)
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		} else if r, ok := res.(*mcp.CallToolResult); ok && r.IsError {
			span.SetStatus(codes.Error, "the tool reported an error")
		}
		return res, err
	}
}
