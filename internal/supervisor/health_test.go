package supervisor

import (
	"context"
	"errors"
	"testing"
)

type pingConn struct{ err error }

func (p pingConn) Ping(context.Context) error { return p.err }
func (p pingConn) Close() error               { return nil }

// TestAgentMonitor: one failed probe is not yet unresponsive, two in a row
// are (with the time of the first), and one good probe clears it.
func TestAgentMonitor(t *testing.T) {
	var results []error
	m := &agentMonitor{health: AgentHealth{State: AgentOK}, dial: func(context.Context) (agentConn, error) {
		err := results[0]
		results = results[1:]
		if errors.Is(err, errDial) {
			return nil, err
		}
		return pingConn{err}, nil
	}}
	step := func(err error, wantState string, wantChange bool) AgentHealth {
		t.Helper()
		results = append(results, err)
		h, changed := m.probe()
		if h.State != wantState || changed != wantChange || m.current().State != wantState {
			t.Fatalf("after %v: %+v changed=%v; want %s changed=%v", err, h, changed, wantState, wantChange)
		}
		return h
	}
	step(nil, AgentOK, false)
	first := step(errDial, AgentOK, false)
	h := step(errors.New("ping timed out"), AgentUnresponsive, true)
	if h.Since != first.CheckedAt || h.Error != "ping timed out" {
		t.Fatalf("unresponsive: %+v; since want %v", h, first.CheckedAt)
	}
	step(errDial, AgentUnresponsive, false)
	if h := step(nil, AgentOK, true); h.Error != "" || !h.Since.IsZero() {
		t.Fatalf("recovered: %+v", h)
	}
}

var errDial = errors.New("dial: connection refused")
