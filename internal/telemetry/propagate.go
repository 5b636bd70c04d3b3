package telemetry

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The W3C header and environment names of a trace context.
const (
	TraceparentEnv = "TRACEPARENT"
	TracestateEnv  = "TRACESTATE"
)

var w3c = propagation.TraceContext{}

// Extract returns ctx with the remote span context of h's traceparent and
// tracestate headers, or ctx unchanged when they are absent or malformed.
func Extract(ctx context.Context, h http.Header) context.Context {
	if h.Get("traceparent") == "" {
		return ctx // the common case: no header, no work
	}
	return w3c.Extract(ctx, propagation.HeaderCarrier(h))
}

// ExtractTraceparent is Extract for a traceparent (and tracestate) given
// as strings, as MCP's _meta and the supervisor's registry carry them.
func ExtractTraceparent(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	c := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		c["tracestate"] = tracestate
	}
	return w3c.Extract(ctx, c)
}

// Format returns the traceparent and tracestate of ctx's span, or "" when
// ctx carries no valid span context.
func Format(ctx context.Context) (traceparent, tracestate string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", ""
	}
	c := propagation.MapCarrier{}
	w3c.Inject(ctx, c)
	return c["traceparent"], c["tracestate"]
}

// Env returns the TRACEPARENT (and TRACESTATE) environment entries of ctx's
// span, or nil when it has no valid span context.
func Env(ctx context.Context) []string {
	tp, ts := Format(ctx)
	if tp == "" {
		return nil
	}
	env := []string{TraceparentEnv + "=" + tp}
	if ts != "" {
		env = append(env, TracestateEnv+"="+ts)
	}
	return env
}
