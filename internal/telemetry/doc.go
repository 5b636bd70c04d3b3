// Package telemetry builds the OpenTelemetry tracing of the daemon and the
// supervisors: a tracer provider exporting OTLP over HTTP (batched, never
// on the caller's path) when an endpoint is configured, the W3C trace
// context propagator, and the helpers that carry a trace context across
// the processes (HTTP headers, the TRACEPARENT environment variable of an
// exec, the supervisor's exec registry).
//
// Without an endpoint the global provider stays OpenTelemetry's no-op one:
// spans cost a context lookup and record nothing, and a caller's trace
// context passes through unchanged (the exec span of a no-op provider
// carries its parent's span context), so a caller's traceparent still
// reaches the sandbox as TRACEPARENT. Nothing is exported.
//
// Setup is called once by a main (serve, the supervise role); packages
// below take their tracer from Tracer, which reads the global provider.
package telemetry
