package supervisor

import (
	"context"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/backend"
)

// Agent health. A sandbox whose init still runs may have an agent that no
// longer answers (a fork bomb or a descriptor leak starved it); without a
// check the sandbox reports running while every exec fails with a bare
// "stream ended early". The supervisor probes the agent as the daemon
// would (a fresh connection, hello, ping) and reports what it saw in
// Status, so the daemon can say why an exec failed.
const (
	// agentProbeInterval is the time between probes of a healthy agent.
	agentProbeInterval = 10 * time.Second
	// agentProbeTimeout bounds one probe.
	agentProbeTimeout = 5 * time.Second
	// agentProbeFailures is how many probes in a row must fail before the
	// agent is reported unresponsive (one slow answer under load is not).
	agentProbeFailures = 2
)

// Agent states in AgentHealth.State.
const (
	AgentOK           = "ok"
	AgentUnresponsive = "unresponsive"
)

// AgentHealth is the supervisor's last view of the guest agent.
type AgentHealth struct {
	State string `json:"state"`
	// Since is when the agent stopped answering (unresponsive only).
	Since time.Time `json:"since,omitzero"`
	// Error is the last probe's failure.
	Error     string    `json:"error,omitempty"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
}

// agentMonitor probes an agent and remembers the result; safe for
// concurrent use.
type agentMonitor struct {
	dial     func(ctx context.Context) (agentConn, error)
	interval time.Duration

	mu       sync.Mutex
	health   AgentHealth
	failures int
	firstBad time.Time
	paused   bool // the sandbox is frozen: no probes
}

// setPaused stops (or restarts) the probes while the sandbox is frozen;
// failures counted before do not carry over.
func (m *agentMonitor) setPaused(p bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paused, m.failures = p, 0
}

// agentConn is what a probe needs of a connection to the agent.
type agentConn interface {
	Ping(ctx context.Context) error
	Close() error
}

func newAgentMonitor(inst backend.Instance, interval time.Duration) *agentMonitor {
	return &agentMonitor{
		interval: interval,
		health:   AgentHealth{State: AgentOK},
		dial: func(ctx context.Context) (agentConn, error) {
			conn, err := inst.DialAgent(ctx)
			if err != nil {
				return nil, err
			}
			return agentproto.NewClient(conn)
		},
	}
}

// run probes every interval until done is closed; onChange is told when
// the state flips.
func (m *agentMonitor) run(done <-chan struct{}, onChange func(AgentHealth)) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if h, changed := m.probe(); changed && onChange != nil {
			onChange(h)
		}
	}
}

// probe runs one check and reports the health and whether its state
// changed.
func (m *agentMonitor) probe() (AgentHealth, bool) {
	m.mu.Lock()
	if m.paused {
		m.mu.Unlock()
		return m.current(), false
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), agentProbeTimeout)
	defer cancel()
	now := time.Now()
	c, err := m.dial(ctx)
	if err == nil {
		err = c.Ping(ctx)
		c.Close()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.paused {
		return m.health, false // paused while the probe ran: its failure means nothing
	}
	prev := m.health.State
	m.health.CheckedAt = now
	if err == nil {
		m.failures = 0
		m.health = AgentHealth{State: AgentOK, CheckedAt: now}
		return m.health, prev != AgentOK
	}
	if m.failures == 0 {
		m.firstBad = now
	}
	m.failures++
	m.health.Error = err.Error()
	if m.failures >= agentProbeFailures {
		m.health.State, m.health.Since = AgentUnresponsive, m.firstBad
	}
	return m.health, prev != m.health.State
}

func (m *agentMonitor) current() AgentHealth {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.health
}
