package supervisor

import (
	"context"
	"net/http"
	"sort"
	"sync"

	"github.com/agentkernel/agentkernel/internal/netgw"
)

// GatewayCounters are the totals of a sandbox's gateway since its
// supervisor started, counted from every event before the audit log's
// denial rate limit, so they are exact. Rules are cut by netgw.MetricRule.
type GatewayCounters struct {
	// Connections counts allowed flows by event kind ("connect" for the
	// sandbox's outbound flows, "inbound" for published ports).
	Connections map[string]int64 `json:"connections"`
	// DNSQueries counts DNS answers, allowed or not.
	DNSQueries int64 `json:"dns_queries"`
	// BytesUp (sandbox to world) and BytesDown are payload bytes of closed flows.
	BytesUp   int64 `json:"bytes_up"`
	BytesDown int64 `json:"bytes_down"`
	// Denials counts denied events by kind and rule.
	Denials []DenialCount `json:"denials"`
}

// DenialCount is the number of denials of one kind and rule.
type DenialCount struct {
	Kind  string `json:"kind"`
	Rule  string `json:"rule"`
	Count int64  `json:"count"`
}

// gatewayCounters keeps GatewayCounters; observe is netgw.Config.Observe.
type gatewayCounters struct {
	mu          sync.Mutex
	connections map[string]int64
	dns         int64
	up, down    int64
	denials     map[[2]string]int64
}

func (c *gatewayCounters) observe(e netgw.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connections == nil {
		c.connections = map[string]int64{}
		c.denials = map[[2]string]int64{}
	}
	switch {
	case e.Kind == "dns":
		c.dns++
	case e.Kind == "close":
		c.up += e.BytesUp
		c.down += e.BytesDown
	}
	if !e.Allowed {
		c.denials[[2]string{e.Kind, netgw.MetricRule(e.Rule)}]++
	} else if e.Kind == "connect" || e.Kind == "inbound" {
		c.connections[e.Kind]++
	}
}

func (c *gatewayCounters) snapshot() GatewayCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := GatewayCounters{Connections: map[string]int64{}, DNSQueries: c.dns, BytesUp: c.up, BytesDown: c.down}
	for k, n := range c.connections {
		out.Connections[k] = n
	}
	for k, n := range c.denials {
		out.Denials = append(out.Denials, DenialCount{Kind: k[0], Rule: k[1], Count: n})
	}
	sort.Slice(out.Denials, func(i, j int) bool {
		a, b := out.Denials[i], out.Denials[j]
		return a.Kind < b.Kind || a.Kind == b.Kind && a.Rule < b.Rule
	})
	return out
}

// counterRoutes adds GET /network/counters to the ctl mux.
func (s *server) counterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /network/counters", func(w http.ResponseWriter, r *http.Request) {
		if s.net == nil {
			writeJSON(w, GatewayCounters{Connections: map[string]int64{}})
			return
		}
		writeJSON(w, s.net.counters.snapshot())
	})
}

// NetworkCounters asks the supervisor for its gateway's counters; a
// sandbox without a gateway answers zeros.
func (c *Client) NetworkCounters(ctx context.Context) (GatewayCounters, error) {
	var out GatewayCounters
	err := c.callJSON(ctx, "GET", "/network/counters", nil, &out)
	return out, err
}
