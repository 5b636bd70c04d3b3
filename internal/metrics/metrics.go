// Package metrics is the daemon's Prometheus registry (GET /metrics):
// operation counters and latency histograms the sandbox manager reports
// through Observe, and gauges read when scraped (sandboxes by state and
// backend, warm pools, event followers), plus the Go runtime's and the
// process's own collectors.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// Sources are what the scrape-time gauges read. Any may be nil.
type Sources struct {
	// Sandboxes lists the sandboxes (callers', not pooled ones).
	Sandboxes func(ctx context.Context) ([]api.SandboxInfo, error)
	// Pools lists the warm pools.
	Pools func() []api.PoolInfo
	// Followers counts the open event subscriptions.
	Followers func() int
	// ImageBlobBytes is the size of the image store's blobs.
	ImageBlobBytes func() (int64, error)
	// Gateways sums the gateway counters of the running sandboxes.
	Gateways func(ctx context.Context) supervisor.GatewayCounters
}

// Metrics holds the registry. Its methods are safe for concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	ops      *prometheus.CounterVec
	duration *prometheus.HistogramVec
	pulls    *prometheus.CounterVec
}

// scrapeTimeout bounds the reads of one scrape.
const scrapeTimeout = 5 * time.Second

// New builds the registry.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentkernel_operations_total",
			Help: "Sandbox operations done, by operation (create, claim, exec, remove), backend and result (ok, error).",
		}, []string{"op", "backend", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "agentkernel_operation_duration_seconds",
			Help: "How long sandbox operations took, by operation and backend (exec: from start to exit).",
			// 0.5 ms to about 65 s.
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
		}, []string{"op", "backend"}),
	}
	m.pulls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentkernel_image_pulls_total",
		Help: "Image pulls done through the daemon, by result (ok, error).",
	}, []string{"result"})
	m.pulls.WithLabelValues("ok")
	m.pulls.WithLabelValues("error")
	m.reg.MustRegister(m.ops, m.duration, m.pulls,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&scrapeCollector{src: src})
	return m
}

// Observe records one operation of a backend that took d and failed when
// err is not nil.
func (m *Metrics) Observe(op, backend string, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.ops.WithLabelValues(op, backend, result).Inc()
	m.duration.WithLabelValues(op, backend).Observe(d.Seconds())
}

// ObservePull records one image pull, failed when err is not nil.
func (m *Metrics) ObservePull(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.pulls.WithLabelValues(result).Inc()
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var (
	sandboxesDesc = prometheus.NewDesc("agentkernel_sandboxes", "Sandboxes by status and backend.", []string{"status", "backend"}, nil)
	poolSizeDesc  = prometheus.NewDesc("agentkernel_pool_size", "Sandboxes a warm pool keeps ready.", []string{"pool"}, nil)
	poolReadyDesc = prometheus.NewDesc("agentkernel_pool_ready", "Sandboxes ready in a warm pool.", []string{"pool"}, nil)
	poolStartDesc = prometheus.NewDesc("agentkernel_pool_starting", "Sandboxes a warm pool is making.", []string{"pool"}, nil)
	poolClaimDesc = prometheus.NewDesc("agentkernel_pool_claims_total", "Creates served by a warm pool since the daemon started.", []string{"pool"}, nil)
	poolMissDesc  = prometheus.NewDesc("agentkernel_pool_misses_total", "Creates that matched a warm pool and found it empty.", []string{"pool"}, nil)
	followersDesc = prometheus.NewDesc("agentkernel_event_followers", "Open event subscriptions (GET /events, webhooks).", nil, nil)
	// The gateway's totals, since the daemon started, of every sandbox's
	// gateway (sandbox.Manager.GatewayTotals keeps them from going down).
	gwConnDesc  = prometheus.NewDesc("agentkernel_gateway_connections_total", "Allowed gateway flows, by kind (connect, inbound).", []string{"kind"}, nil)
	gwDenyDesc  = prometheus.NewDesc("agentkernel_gateway_denials_total", "Gateway denials, by event kind and rule (cut to its kind unless host-fixed).", []string{"kind", "rule"}, nil)
	gwDNSDesc   = prometheus.NewDesc("agentkernel_gateway_dns_queries_total", "DNS answers of the sandboxes' gateways.", nil, nil)
	gwBytesDesc = prometheus.NewDesc("agentkernel_gateway_bytes_total", "Payload bytes of closed gateway flows, by direction (up: sandbox to world, down).", []string{"direction"}, nil)
)

var imgBytesDesc = prometheus.NewDesc("agentkernel_image_store_bytes", "Size of the image store's blobs (compressed layers, manifests, configs; not unpacked layers).", nil, nil)

// scrapeCollector reads its gauges when scraped.
type scrapeCollector struct{ src Sources }

func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{sandboxesDesc, poolSizeDesc, poolReadyDesc, poolStartDesc, poolClaimDesc, poolMissDesc, followersDesc, gwConnDesc, gwDenyDesc, gwDNSDesc, gwBytesDesc, imgBytesDesc} {
		ch <- d
	}
}

func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Sandboxes != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		list, err := c.src.Sandboxes(ctx)
		cancel()
		if err != nil {
			ch <- prometheus.NewInvalidMetric(sandboxesDesc, err)
		} else {
			counts := map[[2]string]int{}
			for _, sb := range list {
				counts[[2]string{sb.Status, sb.Backend}]++
			}
			for k, n := range counts {
				ch <- prometheus.MustNewConstMetric(sandboxesDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
			}
		}
	}
	if c.src.Pools != nil {
		for _, p := range c.src.Pools() {
			k := p.PoolKey.String()
			ch <- prometheus.MustNewConstMetric(poolSizeDesc, prometheus.GaugeValue, float64(p.Size), k)
			ch <- prometheus.MustNewConstMetric(poolReadyDesc, prometheus.GaugeValue, float64(p.Ready), k)
			ch <- prometheus.MustNewConstMetric(poolStartDesc, prometheus.GaugeValue, float64(p.Starting), k)
			ch <- prometheus.MustNewConstMetric(poolClaimDesc, prometheus.CounterValue, float64(p.Claimed), k)
			ch <- prometheus.MustNewConstMetric(poolMissDesc, prometheus.CounterValue, float64(p.Missed), k)
		}
	}
	if c.src.Followers != nil {
		ch <- prometheus.MustNewConstMetric(followersDesc, prometheus.GaugeValue, float64(c.src.Followers()))
	}
	if c.src.ImageBlobBytes != nil {
		if n, err := c.src.ImageBlobBytes(); err != nil {
			ch <- prometheus.NewInvalidMetric(imgBytesDesc, err)
		} else {
			ch <- prometheus.MustNewConstMetric(imgBytesDesc, prometheus.GaugeValue, float64(n))
		}
	}
	if c.src.Gateways != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		t := c.src.Gateways(ctx)
		cancel()
		for k, n := range t.Connections {
			ch <- prometheus.MustNewConstMetric(gwConnDesc, prometheus.CounterValue, float64(n), k)
		}
		for _, d := range t.Denials {
			ch <- prometheus.MustNewConstMetric(gwDenyDesc, prometheus.CounterValue, float64(d.Count), d.Kind, d.Rule)
		}
		ch <- prometheus.MustNewConstMetric(gwDNSDesc, prometheus.CounterValue, float64(t.DNSQueries))
		ch <- prometheus.MustNewConstMetric(gwBytesDesc, prometheus.CounterValue, float64(t.BytesUp), "up")
		ch <- prometheus.MustNewConstMetric(gwBytesDesc, prometheus.CounterValue, float64(t.BytesDown), "down")
	}
}
