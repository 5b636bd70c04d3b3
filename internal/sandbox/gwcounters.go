package sandbox

import (
	"context"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/internal/supervisor"
)

// gatewayQueryTimeout bounds one supervisor's answer to GatewayTotals.
const gatewayQueryTimeout = 2 * time.Second

// gatewayTally keeps what GatewayTotals has seen, so that its totals never
// go down (Prometheus counters): each running sandbox's last answer stands
// in for it when its supervisor does not answer in time, and a sandbox no
// longer running adds its last answer to the removed sandboxes' sum. What a
// removed sandbox's gateway counted after the last scrape is not seen.
type gatewayTally struct {
	mu   sync.Mutex
	last map[string]supervisor.GatewayCounters // by sandbox UUID
	gone supervisor.GatewayCounters
}

// GatewayTotals sums the gateway counters of every sandbox since the daemon
// started: the running sandboxes' supervisors, asked in parallel, and the
// last answers of those removed since.
func (m *Manager) GatewayTotals(ctx context.Context) supervisor.GatewayCounters {
	m.mu.Lock()
	sups := make(map[string]*supervisor.Client, len(m.live))
	for uuid, l := range m.live {
		sups[uuid] = l.sup
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, gatewayQueryTimeout)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		answers = map[string]supervisor.GatewayCounters{}
	)
	for uuid, sup := range sups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := sup.NetworkCounters(ctx)
			if err != nil {
				m.log.Debug("gateway counters", "err", err)
				return
			}
			mu.Lock()
			answers[uuid] = c
			mu.Unlock()
		}()
	}
	wg.Wait()

	t := &m.gateways
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last = map[string]supervisor.GatewayCounters{}
	}
	for uuid, c := range answers {
		t.last[uuid] = c
	}
	for uuid, c := range t.last {
		if _, running := sups[uuid]; !running {
			t.gone = addCounters(t.gone, c)
			delete(t.last, uuid)
		}
	}
	total := t.gone
	for _, c := range t.last {
		total = addCounters(total, c)
	}
	return total
}

// addCounters returns a + b, sharing nothing with either.
func addCounters(a, b supervisor.GatewayCounters) supervisor.GatewayCounters {
	sum := supervisor.GatewayCounters{
		Connections: map[string]int64{},
		DNSQueries:  a.DNSQueries + b.DNSQueries,
		BytesUp:     a.BytesUp + b.BytesUp,
		BytesDown:   a.BytesDown + b.BytesDown,
	}
	denials := map[[2]string]int64{}
	var order [][2]string
	for _, c := range []supervisor.GatewayCounters{a, b} {
		for k, n := range c.Connections {
			sum.Connections[k] += n
		}
		for _, d := range c.Denials {
			k := [2]string{d.Kind, d.Rule}
			if _, seen := denials[k]; !seen {
				order = append(order, k)
			}
			denials[k] += d.Count
		}
	}
	for _, k := range order {
		sum.Denials = append(sum.Denials, supervisor.DenialCount{Kind: k[0], Rule: k[1], Count: denials[k]})
	}
	return sum
}
