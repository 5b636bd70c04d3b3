package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestEvents(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	s.eventsKeep = 5
	t0 := time.Date(2026, 5, 6, 7, 8, 9, 10, time.FixedZone("X", -7200))
	for i := 0; i < 12; i++ {
		ev, err := s.AppendEvent(ctx, Event{SandboxUUID: "u1", SandboxName: "a", Event: fmt.Sprintf("e%d", i),
			Time: t0.Add(time.Duration(i) * time.Second), Details: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID == 0 || ev.Time.Location() != time.UTC {
			t.Fatalf("appended %+v", ev)
		}
	}
	if _, err := s.AppendEvent(ctx, Event{SandboxUUID: "u2", SandboxName: "b", Event: "other"}); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ListEvents(ctx, "u1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 {
		t.Fatalf("kept %d events, want 5", len(evs))
	}
	for i, ev := range evs {
		n := i + 7
		if ev.Event != fmt.Sprintf("e%d", n) || string(ev.Details) != fmt.Sprintf(`{"i":%d}`, n) ||
			!ev.Time.Equal(t0.Add(time.Duration(n)*time.Second)) || ev.Time.Location() != time.UTC || ev.SandboxName != "a" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	last2, _ := s.ListEvents(ctx, "u1", 2)
	if len(last2) != 2 || last2[0].Event != "e10" || last2[1].Event != "e11" {
		t.Fatalf("limit 2: %+v", last2)
	}
	if other, _ := s.ListEvents(ctx, "u2", 0); len(other) != 1 || other[0].Details != nil {
		t.Fatalf("other sandbox: %+v", other)
	}
	if none, err := s.ListEvents(ctx, "nope", 0); err != nil || len(none) != 0 {
		t.Fatalf("unknown sandbox: %v, %v", none, err)
	}
	for _, bad := range []Event{
		{SandboxName: "a", Event: "x"},
		{SandboxUUID: "u1"},
		{SandboxUUID: "u1", Event: "x", Details: json.RawMessage(`{`)},
	} {
		if _, err := s.AppendEvent(ctx, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	n, err := s.DeleteEventsBefore(ctx, t0.Add(10*time.Second))
	if err != nil || n != 3 {
		t.Fatalf("pruned %d, %v; want 3", n, err)
	}
	if evs, _ := s.ListEvents(ctx, "u1", 0); len(evs) != 2 {
		t.Fatalf("after pruning: %d events", len(evs))
	}
}

// TestConcurrentWrites has many goroutines write and read at once, through
// one Store and through a second Store on the same file (as a second
// process would), and expects no "database is locked" error.
func TestConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s1, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()

	const writers, perWriter = 24, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter*2)
	for w := 0; w < writers; w++ {
		s := s1
		if w%4 == 0 {
			s = s2
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			uuid := fmt.Sprintf("u%d", w%6)
			for i := 0; i < perWriter; i++ {
				if _, err := s.AppendEvent(ctx, Event{SandboxUUID: uuid, SandboxName: uuid, Event: "exec",
					Details: json.RawMessage(fmt.Sprintf(`{"w":%d,"i":%d}`, w, i))}); err != nil {
					errs <- err
				}
				if i%10 == 0 {
					name := fmt.Sprintf("sb-%d-%d", w, i)
					if _, err := s.CreateSandbox(ctx, Sandbox{UUID: name, Name: name, Status: "created"}); err != nil {
						errs <- err
					} else if err := s.UpdateSandboxStatus(ctx, name, "running", ""); err != nil {
						errs <- err
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter/4; i++ {
				if _, err := s.ListEvents(ctx, fmt.Sprintf("u%d", w%6), 50); err != nil {
					errs <- err
				}
				if _, err := s.ListSandboxes(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := 0
	for u := 0; u < 6; u++ {
		evs, err := s1.ListEvents(ctx, fmt.Sprintf("u%d", u), 0)
		if err != nil {
			t.Fatal(err)
		}
		total += len(evs)
	}
	if total != writers*perWriter {
		t.Fatalf("%d events stored, want %d", total, writers*perWriter)
	}
	list, _ := s2.ListSandboxes(ctx)
	if len(list) != writers*perWriter/10 {
		t.Fatalf("%d sandboxes, want %d", len(list), writers*perWriter/10)
	}
}

func TestListEventsAfter(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	if id, err := s.LastEventID(ctx); err != nil || id != 0 {
		t.Fatalf("empty store: last id %d, %v", id, err)
	}
	var ids []int64
	for i, sb := range []string{"a", "b", "a", "c"} {
		ev, err := s.AppendEvent(ctx, Event{SandboxUUID: sb, SandboxName: sb, Event: fmt.Sprintf("e%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	got, err := s.ListEventsAfter(ctx, ids[1], 0)
	if err != nil || len(got) != 2 || got[0].ID != ids[2] || got[1].Event != "e3" || got[1].SandboxUUID != "c" {
		t.Fatalf("after %d: %+v, %v", ids[1], got, err)
	}
	if got, _ := s.ListEventsAfter(ctx, 0, 1); len(got) != 1 || got[0].ID != ids[0] {
		t.Fatalf("first page of 1: %+v", got)
	}
	if last, _ := s.LastEventID(ctx); last != ids[3] {
		t.Fatalf("last id %d, want %d", last, ids[3])
	}
}
