package sandbox

import (
	"context"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/internal/telemetry"
)

var tracer = telemetry.Tracer("sandbox")

// execTraceTimeout bounds the exec registry calls to a supervisor.
const execTraceTimeout = 2 * time.Second

// traceExec starts the span of an exec in sandbox name (uuid) and returns
// the context it runs under and end, to call once with how it ended. For a
// valid span context it adds TRACEPARENT (and TRACESTATE) to req's
// environment, unless the caller set them; with tracing off that is the
// caller's own context passed through. A recorded span is also registered
// with the sandbox's supervisor until end, so that its gateway makes the
// connections the exec opens child spans of it.
func (m *Manager) traceExec(ctx context.Context, name, uuid string, req *ExecOptions) (context.Context, func(code int, err error)) {
	if !telemetry.Enabled() && !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, func(int, error) {} // tracing off, nothing to pass on
	}
	argv0 := ""
	if len(req.Argv) > 0 {
		argv0 = req.Argv[0]
	}
	ctx, span := tracer.Start(ctx, "sandbox.exec", trace.WithAttributes(
		attribute.String("agentkernel.sandbox", name), attribute.String("process.executable.name", argv0)))
	if env := telemetry.Env(ctx); env != nil && !hasEnv(req.Env, telemetry.TraceparentEnv) {
		req.Env = append(append([]string(nil), req.Env...), env...)
	}
	if !span.IsRecording() {
		return ctx, func(int, error) {}
	}
	// The registration is sent, not waited for (see SendExecTrace); the
	// clear, after the exec, waits for its answer and runs only if it
	// took.
	var registered func() error
	var sup *supervisor.Client
	id := span.SpanContext().SpanID().String()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execTraceTimeout)
	if l := m.getLive(uuid); l != nil {
		sup = l.sup
		tp, ts := telemetry.Format(ctx)
		registered = sup.SendExecTrace(sctx, id, supervisor.ExecTrace{Traceparent: tp, Tracestate: ts})
	}
	return ctx, func(code int, err error) {
		// Off the exec's path: the caller has its exit code already,
		// and a connection the gateway sees until the clear lands is
		// still this exec's or, newer, another's.
		go func() {
			defer cancel()
			if sup == nil {
				return
			}
			if rerr := registered(); rerr != nil {
				m.log.Debug("exec trace not registered", "sandbox", name, "err", rerr)
				return
			}
			cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), execTraceTimeout)
			defer ccancel()
			sup.ClearExecTrace(cctx, id)
		}()
		span.SetAttributes(attribute.Int("process.exit.code", code))
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// hasEnv reports whether env sets key.
func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

// startSpan starts the span of an operation on sandbox name.
func startSpan(ctx context.Context, op, name string) (context.Context, trace.Span) {
	return tracer.Start(ctx, op, trace.WithAttributes(attribute.String("agentkernel.sandbox", name)))
}

// endSpan ends span, marking it failed with err.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
