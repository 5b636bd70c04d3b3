package supervisor

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentkernel/agentkernel/internal/netgw"
	"github.com/agentkernel/agentkernel/internal/telemetry"
)

func spanContext(t *testing.T, tp string) trace.SpanContext {
	t.Helper()
	sc := trace.SpanContextFromContext(telemetry.ExtractTraceparent(context.Background(), tp, ""))
	if !sc.IsValid() {
		t.Fatalf("bad traceparent %s", tp)
	}
	return sc
}

// TestFlowSpan: a flow is the child of the newest exec, linked to the
// others; an HTTP request's own traceparent wins; with no exec and no
// header there is no span.
func TestFlowSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	var reg execTraces
	ev := netgw.Event{Kind: "connect", Name: "allowed.test", IP: netip.MustParseAddr("203.0.113.10"), Port: 80, Allowed: true, Rule: "name:allowed.test"}
	if tid, sid, end := reg.flowSpan(ev, nil); tid != "" || sid != "" {
		t.Fatalf("a flow with no exec was traced: %s %s", tid, sid)
	} else {
		end(ev)
	}

	older := spanContext(t, "00-11111111111111111111111111111111-1111111111111111-01")
	newer := spanContext(t, "00-22222222222222222222222222222222-2222222222222222-01")
	reg.set("a", older)
	time.Sleep(time.Millisecond)
	reg.set("b", newer)
	tid, sid, end := reg.flowSpan(ev, []byte("GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n"))
	ev.Kind, ev.BytesDown = "close", 42
	end(ev)
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if tid != newer.TraceID().String() || s.Parent().SpanID() != newer.SpanID() || sid != s.SpanContext().SpanID().String() {
		t.Errorf("flow span %s/%s parent %v: want the newest exec's child", tid, sid, s.Parent())
	}
	if len(s.Links()) != 1 || !s.Links()[0].SpanContext.Equal(older) {
		t.Errorf("links %+v: want the older exec", s.Links())
	}

	head := []byte("GET / HTTP/1.1\r\nHost: allowed.test\r\nTraceparent: 00-33333333333333333333333333333333-3333333333333333-01\r\n\r\n")
	tid, _, end = reg.flowSpan(ev, head)
	end(ev)
	if tid != "33333333333333333333333333333333" {
		t.Errorf("trace %s: want the request header's", tid)
	}

	reg.clear("a")
	reg.clear("b")
	if sc, links := reg.current(); sc.IsValid() || links != nil {
		t.Errorf("after clearing: %v %v", sc, links)
	}
}
