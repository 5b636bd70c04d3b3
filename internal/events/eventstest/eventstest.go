// Package eventstest is an in-memory events.Source for tests: a recorded
// history and a Broker, used in the order the daemon uses its store and
// broker (record, then publish).
package eventstest

import (
	"context"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/internal/events"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// Source is a history in memory and a Broker.
type Source struct {
	*events.Broker
	mu  sync.Mutex
	log []api.Event
}

// New returns an empty Source.
func New() *Source { return &Source{Broker: events.NewBroker()} }

// Add records an event of sandbox "sb" called name, then publishes it.
func (s *Source) Add(name string) api.Event {
	s.mu.Lock()
	ev := api.Event{ID: int64(len(s.log) + 1), Event: name, Sandbox: "sb", Time: time.Now()}
	s.log = append(s.log, ev)
	s.mu.Unlock()
	s.Publish(ev)
	return ev
}

// Len is how many events were recorded.
func (s *Source) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// EventsAfter implements events.Source.
func (s *Source) EventsAfter(_ context.Context, after int64, limit int) ([]api.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.Event
	for _, ev := range s.log {
		if ev.ID > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

// SubscribeEvents implements events.Source.
func (s *Source) SubscribeEvents(n int) (<-chan api.Event, func()) { return s.Subscribe(n) }

// LastEventID is the newest event's ID.
func (s *Source) LastEventID(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.log)), nil
}
