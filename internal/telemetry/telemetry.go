package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// EndpointEnv is the standard OpenTelemetry variable naming the OTLP
// endpoint; Resolve honours it when no endpoint was configured.
const EndpointEnv = "OTEL_EXPORTER_OTLP_ENDPOINT"

// SupervisorEndpointEnv carries the daemon's resolved endpoint to the
// supervisors it spawns (their environment is otherwise minimal).
const SupervisorEndpointEnv = "AGENTKERNEL_OTEL_ENDPOINT"

// Named delays of the batch span processor.
const (
	// batchDelay is how long finished spans may wait before an export:
	// short, so that a supervisor killed without warning loses little.
	batchDelay = time.Second
	// shutdownTimeout bounds the final flush.
	shutdownTimeout = 5 * time.Second
)

// Resolve returns the endpoint to use: flag if set, else
// OTEL_EXPORTER_OTLP_ENDPOINT, else "" (tracing off).
func Resolve(flag string) string {
	if flag != "" {
		return flag
	}
	return os.Getenv(EndpointEnv)
}

// tracesURL turns an endpoint into the URL spans are POSTed to. A base URL
// (http://host:4318 or with a path ending in /) gets /v1/traces appended,
// as OTEL_EXPORTER_OTLP_ENDPOINT's specification says; a URL whose path
// already ends in /v1/traces is used as it is.
func tracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: OTLP endpoint %q: want an http:// or https:// URL such as http://127.0.0.1:4318", errdefs.ErrInvalidArgument, endpoint)
	}
	if !strings.HasSuffix(u.Path, "/v1/traces") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	}
	return u.String(), nil
}

// Check reports whether endpoint is usable, without starting anything.
func Check(endpoint string) error {
	if endpoint == "" {
		return nil
	}
	_, err := tracesURL(endpoint)
	return err
}

// Setup installs the W3C trace-context propagator and, when endpoint is
// set, a global tracer provider that batches spans of service to it. The
// returned shutdown flushes and stops the provider; call it once before
// the process exits. With no endpoint the provider stays the no-op one and
// shutdown does nothing.
func Setup(ctx context.Context, endpoint, service string) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	if endpoint == "" {
		return func(context.Context) error { return nil }, nil
	}
	tu, err := tracesURL(endpoint)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(tu))
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", service))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(batchDelay)),
		sdktrace.WithResource(res),
	)
	otel.SetTracerProvider(tp)
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
		defer cancel()
		return tp.Shutdown(ctx)
	}, nil
}

// Tracer is the tracer of the named component, from the global provider.
func Tracer(name string) trace.Tracer {
	return otel.Tracer("github.com/agentkernel/agentkernel/" + name)
}

// Enabled reports whether a real provider is installed (Setup was given an
// endpoint). Callers use it to skip work only a recorded span needs.
func Enabled() bool {
	_, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider)
	return ok
}
