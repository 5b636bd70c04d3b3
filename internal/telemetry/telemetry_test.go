package telemetry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

const callerTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":           "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":          "http://127.0.0.1:4318/v1/traces",
		"https://otel.example/base":       "https://otel.example/base/v1/traces",
		"http://collector:4318/v1/traces": "http://collector:4318/v1/traces",
	} {
		if got, err := tracesURL(in); err != nil || got != want {
			t.Errorf("tracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"127.0.0.1:4318", "grpc://x:4317", "http://", "::"} {
		if err := Check(bad); err == nil {
			t.Errorf("Check(%q) accepted it", bad)
		}
	}
}

func TestResolve(t *testing.T) {
	t.Setenv(EndpointEnv, "http://env:4318")
	if got := Resolve("http://flag:4318"); got != "http://flag:4318" {
		t.Errorf("the flag does not win: %q", got)
	}
	if got := Resolve(""); got != "http://env:4318" {
		t.Errorf("without the flag: %q, want the environment's", got)
	}
}

// serveOnce runs HTTPSpan over one request and returns the environment an
// exec started inside it would get.
func serveOnce(t *testing.T, tr trace.Tracer, traceparent string) (env []string, code int) {
	t.Helper()
	r := httptest.NewRequest("POST", "/sandboxes/x/exec", nil)
	if traceparent != "" {
		r.Header.Set("traceparent", traceparent)
	}
	w := &statusRecorder{ResponseRecorder: httptest.NewRecorder()}
	HTTPSpan(tr, "POST /sandboxes/{name}/exec", w, r, func(w http.ResponseWriter, r *http.Request) {
		env = Env(r.Context())
		w.WriteHeader(http.StatusTeapot)
	})
	return env, w.Code
}

// statusRecorder is a StatusWriter, as the API's recorder is.
type statusRecorder struct{ *httptest.ResponseRecorder }

func (s *statusRecorder) Status() int { return s.Code }

func TestHTTPSpanIsTheCallersChild(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	env, _ := serveOnce(t, tp.Tracer("test"), callerTP)
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "POST /sandboxes/{name}/exec" {
		t.Errorf("span name %q: want the route pattern", s.Name())
	}
	if s.Parent().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent().SpanID().String() != "00f067aa0ba902b7" || !s.Parent().IsRemote() {
		t.Errorf("parent %+v: want the caller's span", s.Parent())
	}
	want := "TRACEPARENT=00-4bf92f3577b34da6a3ce929d0e0e4736-" + s.SpanContext().SpanID().String() + "-01"
	if len(env) != 1 || env[0] != want {
		t.Errorf("exec env %q, want [%s]", env, want)
	}
	if code, ok := attr(s, "http.response.status_code"); !ok || code != int64(http.StatusTeapot) {
		t.Errorf("status attribute %v %v", code, ok)
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) (int64, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.AsInt64(), true
		}
	}
	return 0, false
}

// TestOffPassesThrough: with tracing off (the no-op provider), a caller's
// traceparent reaches the exec unchanged, and without one the exec gets
// no TRACEPARENT.
func TestOffPassesThrough(t *testing.T) {
	tr := noop.NewTracerProvider().Tracer("test")
	if env, code := serveOnce(t, tr, callerTP); len(env) != 1 || env[0] != "TRACEPARENT="+callerTP || code != http.StatusTeapot {
		t.Errorf("with a caller's traceparent: env %q, status %d", env, code)
	}
	if env, _ := serveOnce(t, tr, ""); env != nil {
		t.Errorf("without a traceparent: env %q, want none", env)
	}
	if env, _ := serveOnce(t, tr, "00-zz-bad-01"); env != nil {
		t.Errorf("with a malformed traceparent: env %q, want none", env)
	}
}

func TestSetupWithoutEndpointExportsNothing(t *testing.T) {
	shutdown, err := Setup(context.Background(), "", "test")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if Enabled() {
		t.Error("Enabled with no endpoint")
	}
	_, span := Tracer("test").Start(context.Background(), "x")
	if span.IsRecording() {
		t.Error("a span records with no endpoint")
	}
	span.End()
}

func TestExtractTraceparentAndFormat(t *testing.T) {
	ctx := ExtractTraceparent(context.Background(), callerTP, "k=v")
	if tp, ts := Format(ctx); tp != callerTP || ts != "k=v" {
		t.Errorf("Format = %q, %q", tp, ts)
	}
	if env := Env(ctx); len(env) != 2 || env[1] != "TRACESTATE=k=v" {
		t.Errorf("Env = %q", env)
	}
}
