package integration

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agentkernel/agentkernel/test/conformance"
)

// scrapeSocket GETs /metrics over the daemon's Unix socket.
func scrapeSocket(t *testing.T, sock string) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://daemon/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics over the socket: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// TestMetricsGateway: one allowed and one denied connection of a sandbox
// move the gateway counters by exactly one each, the denial under its
// host-fixed rule.
func TestMetricsGateway(t *testing.T) {
	requireEnv(t)
	w := newNetWorld(t)
	e := w.e
	e.create(t, "metgw", "--allow", "allowed.test", "--dir", w.probeDir+":/probe:ro")
	before := scrapeSocket(t, e.socket())
	e.ok(t, "exec", "metgw", "--", "curl", "-sS", "-m", "10", "--cacert", "/probe/world-ca.pem", "https://allowed.test/")
	e.ak(t, "exec", "metgw", "--", "curl", "-sS", "-m", "5", "http://"+conformance.HostIP+"/")
	after := scrapeSocket(t, e.socket())
	conn := map[string]string{"kind": "connect"}
	if d := value(after, "agentkernel_gateway_connections_total", conn) - value(before, "agentkernel_gateway_connections_total", conn); d != 1 {
		t.Errorf("agentkernel_gateway_connections{kind=connect} moved by %v, want 1", d)
	}
	var forbidden float64
	for _, m := range after["agentkernel_gateway_denials_total"].GetMetric() {
		var kind, rule string
		for _, lp := range m.Label {
			switch lp.GetName() {
			case "kind":
				kind = lp.GetValue()
			case "rule":
				rule = lp.GetValue()
			}
		}
		if kind == "connect" && strings.HasPrefix(rule, "forbidden:") {
			forbidden += m.Counter.GetValue() - value(before, "agentkernel_gateway_denials_total", map[string]string{"kind": kind, "rule": rule})
		}
	}
	if forbidden != 1 {
		t.Errorf("agentkernel_gateway_denials{kind=connect,rule=forbidden:*} moved by %v, want 1", forbidden)
	}
	if value(after, "agentkernel_gateway_dns_queries_total", nil) < 1 {
		t.Error("agentkernel_gateway_dns_queries did not move")
	}
	if value(after, "agentkernel_gateway_bytes_total", map[string]string{"direction": "down"}) <= 0 {
		t.Error("agentkernel_gateway_bytes{direction=down} is 0")
	}
	// They are counters: removing the sandbox takes nothing off them.
	e.ok(t, "sandbox", "remove", "metgw")
	gone := scrapeSocket(t, e.socket())
	for _, name := range []string{"agentkernel_gateway_connections_total", "agentkernel_gateway_dns_queries_total"} {
		if a, g := familySum(after, name), familySum(gone, name); g < a {
			t.Errorf("%s went down from %v to %v when the sandbox was removed", name, a, g)
		}
	}
}

// familySum adds up every series of family name.
func familySum(fams map[string]*dto.MetricFamily, name string) float64 {
	var n float64
	for _, m := range fams[name].GetMetric() {
		n += m.GetCounter().GetValue()
	}
	return n
}

// TestMetricsImagePull: a good and a failed pull move the pull counter by
// one each.
func TestMetricsImagePull(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	reg := newImageRegistry(t)
	ref := reg.push(t, "it/hello:1", helloImage(t))
	e.ok(t, "image", "ls") // starts the daemon
	before := scrapeSocket(t, e.socket())
	e.ok(t, "image", "pull", ref)
	if r := e.ak(t, "image", "pull", reg.host+"/it/nosuch:1"); r.code == 0 {
		t.Fatalf("pulling a missing image: %v", r)
	}
	after := scrapeSocket(t, e.socket())
	for _, result := range []string{"ok", "error"} {
		l := map[string]string{"result": result}
		if d := value(after, "agentkernel_image_pulls_total", l) - value(before, "agentkernel_image_pulls_total", l); d != 1 {
			t.Errorf("agentkernel_image_pulls_total{result=%s} moved by %v, want 1", result, d)
		}
	}
	if n := value(after, "agentkernel_image_store_bytes", nil); n <= 0 {
		t.Errorf("agentkernel_image_store_bytes = %v after a pull", n)
	}
}
