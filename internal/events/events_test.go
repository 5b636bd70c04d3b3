package events

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// memSource is a recorded history in memory and a Broker: what the
// daemon's store and broker are, in the order the daemon uses them (record,
// then publish).
type memSource struct {
	*Broker
	mu  sync.Mutex
	log []api.Event
}

func (m *memSource) add(name string) {
	m.mu.Lock()
	ev := api.Event{ID: int64(len(m.log) + 1), Event: name}
	m.log = append(m.log, ev)
	m.mu.Unlock()
	m.Publish(ev)
}

func (m *memSource) EventsAfter(_ context.Context, after int64, limit int) ([]api.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []api.Event
	for _, ev := range m.log {
		if ev.ID > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (m *memSource) SubscribeEvents(n int) (<-chan api.Event, func()) { return m.Subscribe(n) }

var errEnough = errors.New("enough")

// TestFollowHistoryThenLive: a follower starting after event 2 gets 3 to
// N exactly once, in order, across the record and live events, even when
// live events come faster than its buffer (it resumes from the record).
func TestFollowHistoryThenLive(t *testing.T) {
	src := &memSource{Broker: NewBroker()}
	for range 5 {
		src.add("old")
	}
	const total = 5000 // well past liveBuffer, to cut the follower off
	var got []int64
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		done <- Follow(context.Background(), src, 2, func(ev api.Event) error {
			if len(got) == 0 {
				close(started)
				time.Sleep(10 * time.Millisecond) // fall behind
			}
			got = append(got, ev.ID)
			if ev.ID == total {
				return errEnough
			}
			return nil
		})
	}()
	<-started
	for src.lenLog() < total {
		src.add("new")
	}
	select {
	case err := <-done:
		if !errors.Is(err, errEnough) {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follower did not reach the last event")
	}
	if len(got) != total-2 {
		t.Fatalf("got %d events, want %d", len(got), total-2)
	}
	for i, id := range got {
		if id != int64(i+3) {
			t.Fatalf("event %d has id %d, want %d (order or duplicates broken)", i, id, i+3)
		}
	}
}

func (m *memSource) lenLog() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.log)
}

// TestFollowStopsWithContext: a follower waiting for live events returns
// when its context ends, and unsubscribes.
func TestFollowStopsWithContext(t *testing.T) {
	src := &memSource{Broker: NewBroker()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, src, 0, func(api.Event) error { return nil }) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v", err)
	}
	src.Broker.mu.Lock()
	defer src.Broker.mu.Unlock()
	if n := len(src.subs); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}
}
