package integration

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs url (with the bearer key when not empty) and parses it as
// Prometheus text, as a scraper does.
func scrape(t *testing.T, url, key string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return 200, fams
}

// value is the counter, gauge or histogram count of the metric of family
// name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// TestMetrics scrapes the real daemon over TCP (key required) and on
// --metrics-addr, and checks that counters and histograms move by exactly
// the operations done through the CLI.
func TestMetrics(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	const key = "it-metrics-key-0123456789"
	port, mport := freePort(t), freePort(t)
	startServe(t, e, "--port", strconv.Itoa(port), "--api-key", key, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", mport))
	api := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	if code, _ := scrape(t, api, ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without the key: %d, want 401", code)
	}
	_, before := scrape(t, api, key)
	e.ok(t, "sandbox", "create", "met-a")
	e.ok(t, "sandbox", "create", "met-b")
	for range 3 {
		e.ok(t, "exec", "met-a", "--", "true")
	}
	e.ok(t, "sandbox", "remove", "met-b")
	_, after := scrape(t, api, key)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"agentkernel_operations_total", map[string]string{"op": "create", "backend": "container", "result": "ok"}, 2},
		{"agentkernel_operation_duration_seconds", map[string]string{"op": "create", "backend": "container"}, 2},
		{"agentkernel_operations_total", map[string]string{"op": "exec", "backend": "container", "result": "ok"}, 3},
		{"agentkernel_operation_duration_seconds", map[string]string{"op": "exec", "backend": "container"}, 3},
		{"agentkernel_operations_total", map[string]string{"op": "remove", "backend": "container"}, 1},
	} {
		if d := value(after, c.name, c.labels) - value(before, c.name, c.labels); d != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, d, c.want)
		}
	}
	if n := value(after, "agentkernel_sandboxes", map[string]string{"status": "running", "backend": "container"}); n != 1 {
		t.Errorf("agentkernel_sandboxes{running,container} = %v, want 1", n)
	}
	if after["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
	// The scrapers' listener: /metrics with the key, nothing else.
	maddr := fmt.Sprintf("http://127.0.0.1:%d", mport)
	if code, _ := scrape(t, maddr+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("--metrics-addr without the key: %d, want 401", code)
	}
	if code, fams := scrape(t, maddr+"/metrics", key); code != 200 || fams["agentkernel_operations_total"] == nil {
		t.Errorf("--metrics-addr: %d", code)
	}
	if code, _ := scrape(t, maddr+"/sandboxes", key); code != http.StatusNotFound {
		t.Errorf("--metrics-addr serves /sandboxes: %d", code)
	}
}
