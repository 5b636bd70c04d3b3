// Package events fans the daemon's sandbox events out to live followers
// (GET /events, webhooks) without ever making the daemon wait for one.
//
// Every event is first recorded in the store (the history) and then
// published here. A follower subscribes, replays the history after the
// last event it saw, then takes live events; a follower too slow for its
// buffer is cut off and resumes from the history, so it misses nothing
// the history still holds, and the publisher never blocks.
package events

import (
	"context"
	"sync"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// Broker hands published events to subscribers. The zero value is not
// usable; use NewBroker. Safe for concurrent use.
type Broker struct {
	mu   sync.Mutex
	subs map[*subscription]struct{}
}

type subscription struct {
	ch     chan api.Event
	closed bool
}

// NewBroker returns a Broker with no subscribers.
func NewBroker() *Broker { return &Broker{subs: map[*subscription]struct{}{}} }

// Publish gives ev to every subscriber that has room for it; one that has
// not is cut off (its channel closes) and must resume from the history.
func (b *Broker) Publish(ev api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default:
			b.closeLocked(s)
		}
	}
}

// Subscribe returns a channel of the events published from now on, with
// room for buffer of them, and the function that ends the subscription.
// The channel closes when the subscriber fell behind or unsubscribed.
func (b *Broker) Subscribe(buffer int) (<-chan api.Event, func()) {
	s := &subscription{ch: make(chan api.Event, max(buffer, 1))}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s.ch, func() {
		b.mu.Lock()
		b.closeLocked(s)
		b.mu.Unlock()
	}
}

// Subscribers is how many subscriptions are open.
func (b *Broker) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

func (b *Broker) closeLocked(s *subscription) {
	if !s.closed {
		s.closed = true
		close(s.ch)
		delete(b.subs, s)
	}
}

// Source is where a follower gets events: the recorded history and the
// live ones.
type Source interface {
	// EventsAfter returns recorded events with an ID above after, oldest
	// first, at most limit.
	EventsAfter(ctx context.Context, after int64, limit int) ([]api.Event, error)
	// SubscribeEvents is Broker.Subscribe.
	SubscribeEvents(buffer int) (<-chan api.Event, func())
}

// pageSize is how many recorded events Follow reads at once.
const pageSize = 500

// liveBuffer is a follower's room for live events before it is cut off.
const liveBuffer = 1024

// Follow calls fn with every event after the one with ID after, in ID
// order, each once: first the recorded ones, then live ones as they come,
// resuming from the record whenever it fell behind. It returns when ctx
// ends or fn or the history fails.
func Follow(ctx context.Context, src Source, after int64, fn func(api.Event) error) error {
	last := after
	for {
		live, unsubscribe := src.SubscribeEvents(liveBuffer)
		err := func() error {
			defer unsubscribe()
			// The record first: everything up to now, page by page (the
			// subscription already holds what is published meanwhile).
			for {
				page, err := src.EventsAfter(ctx, last, pageSize)
				if err != nil {
					return err
				}
				for _, ev := range page {
					if err := fn(ev); err != nil {
						return err
					}
					last = ev.ID
				}
				if len(page) < pageSize {
					break
				}
			}
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case ev, ok := <-live:
					if !ok {
						return nil // fell behind: resume from the record
					}
					if ev.ID <= last {
						continue // replayed from the record already
					}
					if err := fn(ev); err != nil {
						return err
					}
					last = ev.ID
				}
			}
		}()
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
