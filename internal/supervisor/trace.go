package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentkernel/agentkernel/internal/netgw"
	"github.com/agentkernel/agentkernel/internal/telemetry"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// ExecTrace is the trace context of one exec in progress, as the daemon
// registers it with PUT /trace/exec/{id} (and removes it with DELETE when
// the exec ends).
type ExecTrace struct {
	Traceparent string `json:"traceparent"`
	Tracestate  string `json:"tracestate,omitempty"`
}

// maxExecTraces bounds the registry, against a daemon that never clears.
const maxExecTraces = 1024

// execTraces is the registry of the execs in progress and their span
// contexts. A flow the gateway accepts while it holds some becomes a child
// span of the newest one, with links to the others (a flow cannot be
// attributed to a process: the gateway sees only the sandbox's address).
type execTraces struct {
	mu   sync.Mutex // guards byID
	byID map[string]execEntry
}

type execEntry struct {
	sc trace.SpanContext
	at time.Time
}

func (t *execTraces) set(id string, sc trace.SpanContext) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byID == nil {
		t.byID = map[string]execEntry{}
	}
	if _, ok := t.byID[id]; !ok && len(t.byID) >= maxExecTraces {
		return false
	}
	t.byID[id] = execEntry{sc: sc, at: time.Now()}
	return true
}

func (t *execTraces) clear(id string) {
	t.mu.Lock()
	delete(t.byID, id)
	t.mu.Unlock()
}

// current returns the newest exec's span context and links to the others.
func (t *execTraces) current() (trace.SpanContext, []trace.Link) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var newest execEntry
	for _, e := range t.byID {
		if e.at.After(newest.at) {
			newest = e
		}
	}
	var links []trace.Link
	if len(t.byID) > 1 {
		for _, e := range t.byID {
			if !e.sc.Equal(newest.sc) {
				links = append(links, trace.Link{SpanContext: e.sc})
			}
		}
	}
	return newest.sc, links
}

var gwTracer = telemetry.Tracer("netgw")

// flowSpan is the gateway's Config.Trace: a span from connect to close.
// Its parent is, in order: the traceparent header of an inspected plain
// HTTP request, else the newest exec in progress. A flow with neither is
// not traced (no span, no ids), so an idle or untraced sandbox costs one
// lock and a map read per connection.
func (t *execTraces) flowSpan(ev netgw.Event, head []byte) (string, string, func(netgw.Event)) {
	parent, links := t.current()
	ctx := context.Background()
	if tp, ts := headerTraceparent(head); tp != "" {
		if sc := trace.SpanContextFromContext(telemetry.ExtractTraceparent(ctx, tp, ts)); sc.IsValid() {
			parent, links = sc, nil
		}
	}
	if !parent.IsValid() {
		return "", "", func(netgw.Event) {}
	}
	ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	_, span := gwTracer.Start(ctx, "gateway.connection", trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(attribute.String("net.peer.name", ev.Name), attribute.String("net.peer.ip", ev.IP.String()),
			attribute.Int("net.peer.port", int(ev.Port)), attribute.String("agentkernel.rule", ev.Rule),
			attribute.Bool("agentkernel.allowed", ev.Allowed)))
	if !span.IsRecording() {
		return "", "", func(netgw.Event) {}
	}
	sc := span.SpanContext()
	return sc.TraceID().String(), sc.SpanID().String(), func(last netgw.Event) {
		span.SetAttributes(attribute.Int64("agentkernel.bytes_up", last.BytesUp), attribute.Int64("agentkernel.bytes_down", last.BytesDown),
			attribute.Bool("agentkernel.intercepted", last.Intercepted))
		if last.Error != "" {
			span.SetStatus(codes.Error, last.Error)
		}
		span.End()
	}
}

// headerTraceparent returns the traceparent and tracestate headers of an
// HTTP request head, if head is one.
func headerTraceparent(head []byte) (string, string) {
	if len(head) == 0 || !bytes.Contains(head, []byte("raceparent")) {
		return "", ""
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(head)))
	if _, err := r.ReadLine(); err != nil {
		return "", ""
	}
	h, _ := r.ReadMIMEHeader()
	return h.Get("Traceparent"), h.Get("Tracestate")
}

// traceRoutes serves the exec registry. Without a gateway, or with
// tracing off in this supervisor, the calls succeed and do nothing.
func (s *server) traceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("PUT /trace/exec/{id}", func(w http.ResponseWriter, r *http.Request) {
		var et ExecTrace
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&et); err != nil {
			ctlError(w, fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err))
			return
		}
		sc := trace.SpanContextFromContext(telemetry.ExtractTraceparent(r.Context(), et.Traceparent, et.Tracestate))
		if !sc.IsValid() {
			ctlError(w, fmt.Errorf("%w: no valid traceparent", errdefs.ErrInvalidArgument))
			return
		}
		if s.net != nil && telemetry.Enabled() && !s.net.traces.set(r.PathValue("id"), sc) {
			ctlError(w, fmt.Errorf("%w: more than %d execs registered", errdefs.ErrUnavailable, maxExecTraces))
			return
		}
		writeJSON(w, struct{}{})
	})
	mux.HandleFunc("DELETE /trace/exec/{id}", func(w http.ResponseWriter, r *http.Request) {
		if s.net != nil {
			s.net.traces.clear(r.PathValue("id"))
		}
		writeJSON(w, struct{}{})
	})
}

// SendExecTrace registers exec id's trace context with the supervisor, so
// that connections its gateway accepts until ClearExecTrace become spans
// of that trace. It does not wait for the answer: it returns
// once the request is written to the supervisor's socket (or has failed),
// and the returned wait gives the call's result. A traced exec sends its
// registration and then starts at once; the supervisor reads the
// registration, already in its socket, long before the command can open a
// connection through its gateway, and the exec does not pay a round trip.
func (c *Client) SendExecTrace(ctx context.Context, id string, et ExecTrace) (wait func() error) {
	wrote := make(chan struct{})
	var once sync.Once
	written := func() { once.Do(func() { close(wrote) }) }
	done := make(chan error, 1)
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { written() },
	})
	go func() {
		err := c.callJSONOn(c.keepHTTP, tctx, "PUT", "/trace/exec/"+id, et, nil)
		written() // failed before writing: nothing to wait for
		done <- err
	}()
	<-wrote
	return sync.OnceValue(func() error { return <-done })
}

// ClearExecTrace removes exec id from the supervisor's registry.
func (c *Client) ClearExecTrace(ctx context.Context, id string) error {
	return c.callJSONOn(c.keepHTTP, ctx, "DELETE", "/trace/exec/"+id, nil, nil)
}
