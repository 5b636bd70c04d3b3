package sandbox

import (
	"context"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/internal/supervisor"
)

// gatewayQueryTimeout bounds one supervisor's answer to GatewayTotals.
const gatewayQueryTimeout = 2 * time.Second

// GatewayTotals sums the gateway counters of the running sandboxes'
// supervisors, asked in parallel. Supervisors that do not answer in time
// are left out, and so are removed sandboxes: the totals can go down, so
// they are gauges, not counters.
func (m *Manager) GatewayTotals(ctx context.Context) supervisor.GatewayCounters {
	m.mu.Lock()
	sups := make([]*supervisor.Client, 0, len(m.live))
	for _, l := range m.live {
		sups = append(sups, l.sup)
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, gatewayQueryTimeout)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		total   = supervisor.GatewayCounters{Connections: map[string]int64{}}
		denials = map[[2]string]int64{}
	)
	for _, sup := range sups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := sup.NetworkCounters(ctx)
			if err != nil {
				m.log.Debug("gateway counters", "err", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for k, n := range c.Connections {
				total.Connections[k] += n
			}
			total.DNSQueries += c.DNSQueries
			total.BytesUp += c.BytesUp
			total.BytesDown += c.BytesDown
			for _, d := range c.Denials {
				denials[[2]string{d.Kind, d.Rule}] += d.Count
			}
		}()
	}
	wg.Wait()
	for k, n := range denials {
		total.Denials = append(total.Denials, supervisor.DenialCount{Kind: k[0], Rule: k[1], Count: n})
	}
	return total
}
