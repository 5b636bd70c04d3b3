package telemetry

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// StatusWriter is a ResponseWriter that remembers its status (the API's
// recorder is one); HTTPSpan reads it to set the span's status.
type StatusWriter interface {
	Status() int
}

// HTTPSpan runs next inside a server span named route (a route pattern
// such as "POST /sandboxes/{name}/exec", never a raw path, so that span
// names stay few). The caller's traceparent and tracestate headers, if
// any, make it a child of the caller's span. While no provider is
// installed (Setup had no endpoint) a request without a traceparent runs
// next directly: tracing off costs one header lookup.
func HTTPSpan(tr trace.Tracer, route string, w http.ResponseWriter, r *http.Request, next func(http.ResponseWriter, *http.Request)) {
	if r.Header.Get("traceparent") == "" && !Enabled() {
		next(w, r) // tracing off and nothing to pass on: no work at all
		return
	}
	ctx := Extract(r.Context(), r.Header)
	ctx, span := tr.Start(ctx, route, trace.WithSpanKind(trace.SpanKindServer))
	if !span.IsRecording() {
		// Tracing off: only the caller's context is passed on.
		next(w, r.WithContext(ctx))
		return
	}
	defer span.End()
	span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", route))
	next(w, r.WithContext(ctx))
	if sw, ok := w.(StatusWriter); ok {
		code := sw.Status()
		if code == 0 {
			code = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", code))
		if code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
	}
}
