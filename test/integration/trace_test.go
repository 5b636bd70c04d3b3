package integration

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// otlpAddr is the in-process receiver's address inside the world: the
// world is a network namespace of its own, so the port is free there, and
// the daemon and its supervisors, which run in it, reach it.
const otlpAddr = "127.0.0.1:4318"

// gotSpan is a span the receiver decoded.
type gotSpan struct {
	service, name           string
	trace, span, parentSpan string
}

// otlpReceiver is an OTLP/HTTP trace receiver: POST /v1/traces with an
// ExportTraceServiceRequest in protobuf.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []gotSpan
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != "POST" || r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	var req coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		svc := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				o.spans = append(o.spans, gotSpan{service: svc, name: s.Name,
					trace: hex.EncodeToString(s.TraceId), span: hex.EncodeToString(s.SpanId), parentSpan: hex.EncodeToString(s.ParentSpanId)})
			}
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// find returns the first span of trace named name, if any.
func (o *otlpReceiver) find(trace, name string) (gotSpan, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, s := range o.spans {
		if s.trace == trace && s.name == name {
			return s, true
		}
	}
	return gotSpan{}, false
}

func (o *otlpReceiver) dump() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var b strings.Builder
	for _, s := range o.spans {
		fmt.Fprintf(&b, "  %s %q trace=%s span=%s parent=%s\n", s.service, s.name, s.trace, s.span, s.parentSpan)
	}
	return b.String()
}

// TestTrace sends an exec with a traceparent the test made, whose command
// fetches a URL through the sandbox's gateway, and finds one trace holding
// the API request's span, the exec's span (its child) and the gateway
// connection's span (the exec's child); the command saw TRACEPARENT naming
// the exec span, and the network log's connection carries the trace id.
func TestTrace(t *testing.T) {
	requireEnv(t)
	w := newNetWorld(t, "--no-tcp", "--otel-endpoint", "http://"+otlpAddr)
	recv := &otlpReceiver{}
	w.inWorld(t, func() { serve(t, listen(t, otlpAddr), recv) })
	e := w.e
	c := e.client(t)
	ctx := context.Background()

	name := "it-trace"
	if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: name, Backend: "container",
		Network: &api.NetworkPolicy{Allow: []string{"allowed.test"}}, Dirs: []string{w.probeDir + ":/probe:ro"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.RemoveSandbox(context.Background(), name) })

	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	script := `echo "TP=$TRACEPARENT"; /probe/probe '{"op":"get","url":"http://allowed.test/"}'`
	out, seen := execTraced(t, e, name, "00-"+traceID+"-"+callerSpan+"-01", script)
	if !strings.Contains(out, `"status":200`) {
		t.Fatalf("the probe did not fetch http://allowed.test: %q", out)
	}

	var httpSpan, execSpan, gwSpan gotSpan
	if !waitFor(30*time.Second, func() bool {
		var ok1, ok2, ok3 bool
		httpSpan, ok1 = recv.find(traceID, "POST /sandboxes/{name}/exec")
		execSpan, ok2 = recv.find(traceID, "sandbox.exec")
		gwSpan, ok3 = recv.find(traceID, "gateway.connection")
		return ok1 && ok2 && ok3
	}) {
		t.Fatalf("trace %s is missing spans; received:\n%s", traceID, recv.dump())
	}
	if httpSpan.parentSpan != callerSpan || httpSpan.service != "agentkernel" {
		t.Errorf("HTTP span %+v: want the child of the caller's %s, from the daemon", httpSpan, callerSpan)
	}
	if execSpan.parentSpan != httpSpan.span {
		t.Errorf("exec span %+v: want the child of the HTTP span %s", execSpan, httpSpan.span)
	}
	if gwSpan.parentSpan != execSpan.span || gwSpan.service != "agentkernel-supervisor" {
		t.Errorf("gateway span %+v: want the child of the exec span %s, from the supervisor", gwSpan, execSpan.span)
	}
	if want := "00-" + traceID + "-" + execSpan.span + "-01"; seen != want {
		t.Errorf("TRACEPARENT in the sandbox = %q, want %q", seen, want)
	}

	evs, err := c.NetworkLog(ctx, name, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		if ev.Kind == "connect" && ev.Allowed && ev.Port == 80 {
			found = true
			if ev.TraceID != traceID || ev.SpanID != gwSpan.span {
				t.Errorf("network log connect %+v: want trace %s span %s", ev, traceID, gwSpan.span)
			}
		}
	}
	if !found {
		t.Errorf("no allowed connect to port 80 in the network log: %+v", evs)
	}
}

// execTraced runs script with sh -c in sandbox name through POST
// /sandboxes/{name}/exec, sending traceparent unless it is empty; it
// returns stdout and the value of the line "TP=..." the script printed.
func execTraced(t *testing.T, e *env, name, traceparent, script string) (stdout, tp string) {
	t.Helper()
	body, _ := json.Marshal(api.ExecRequest{Command: []string{"/bin/sh", "-c", script}, Timeout: "60s"})
	req, _ := http.NewRequest("POST", "http://agentkernel/sandboxes/"+name+"/exec", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	resp, err := e.httpClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Success bool             `json:"success"`
		Data    api.ExecResponse `json:"data"`
		Error   string           `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&env)
	if !env.Success || env.Data.ExitCode != 0 {
		t.Fatalf("exec: %s %+v", resp.Status, env)
	}
	for _, line := range strings.Split(env.Data.Stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "TP="); ok {
			tp = v
		}
	}
	return env.Data.Stdout, tp
}

// TestTraceOff: the shared daemon has no endpoint. A caller's traceparent
// still reaches the command unchanged (passed through, nothing exported);
// without one the command sees no TRACEPARENT.
func TestTraceOff(t *testing.T) {
	requireEnv(t)
	e := shared
	e.create(t, "it-trace-off")
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if _, seen := execTraced(t, e, "it-trace-off", tp, `echo "TP=$TRACEPARENT"`); seen != tp {
		t.Errorf("with a traceparent sent, TRACEPARENT = %q, want it unchanged %q", seen, tp)
	}
	if _, seen := execTraced(t, e, "it-trace-off", "", `echo "TP=$TRACEPARENT"`); seen != "" {
		t.Errorf("with none sent, TRACEPARENT = %q, want empty", seen)
	}
}
