package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/events"
	"github.com/agentkernel/agentkernel/internal/events/eventstest"
	"github.com/agentkernel/agentkernel/pkg/api"
)

var errEnough = errors.New("enough")

// TestFollowHistoryThenLive: a follower starting after event 2 gets 3 to
// N exactly once, in order, across the record and live events, even when
// live events come faster than its buffer (it resumes from the record).
func TestFollowHistoryThenLive(t *testing.T) {
	src := eventstest.New()
	for range 5 {
		src.Add("old")
	}
	const total = 5000 // well past the live buffer, to cut the follower off
	var got []int64
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		done <- events.Follow(context.Background(), src, 2, func(ev api.Event) error {
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
	for src.Len() < total {
		src.Add("new")
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

// TestFollowStopsWithContext: a follower waiting for live events returns
// when its context ends, and unsubscribes.
func TestFollowStopsWithContext(t *testing.T) {
	src := eventstest.New()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- events.Follow(ctx, src, 0, func(api.Event) error { return nil }) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v", err)
	}
	if n := src.Subscribers(); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}
}
