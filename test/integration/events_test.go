package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/webhook"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// hookReceiver is a webhook endpoint on loopback that keeps the events
// whose signature verifies.
type hookReceiver struct {
	secret []byte
	mu     sync.Mutex
	got    []api.Event
	bad    int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if webhook.Verify(h.secret, r.Header.Get(webhook.SignatureHeader), body, time.Now(), time.Minute) != nil {
		h.bad++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev api.Event
	json.Unmarshal(body, &ev)
	h.got = append(h.got, ev)
}

func (h *hookReceiver) events() []api.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]api.Event(nil), h.got...)
}

// follower collects what FollowEvents streams, noting when each arrived.
type follower struct {
	mu     sync.Mutex
	got    []api.Event
	at     []time.Time
	cancel context.CancelFunc
	done   chan error
}

func follow(c *client.Client, opts client.EventsOptions) *follower {
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{cancel: cancel, done: make(chan error, 1)}
	go func() {
		f.done <- c.FollowEvents(ctx, opts, func(ev api.Event) error {
			f.mu.Lock()
			f.got, f.at = append(f.got, ev), append(f.at, time.Now())
			f.mu.Unlock()
			return nil
		})
	}()
	return f
}

// waitFor waits until an event called name of sandbox arrives and returns
// when it did.
func (f *follower) waitFor(t *testing.T, sandbox, name string) (api.Event, time.Time) {
	t.Helper()
	var ev api.Event
	var at time.Time
	if !waitFor(10*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for i, e := range f.got {
			if e.Sandbox == sandbox && e.Event == name {
				ev, at = e, f.at[i]
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no %s event of %s arrived", name, sandbox)
	}
	return ev, at
}

func (f *follower) stop() []api.Event {
	f.cancel()
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.Event(nil), f.got...)
}

func ids(evs []api.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprint(e.ID))
	}
	return strings.Join(s, ",")
}

// TestEvents follows GET /events while the CLI creates a sandbox, runs a
// command in it and removes it; resumes with Last-Event-ID; and checks a
// webhook endpoint that was down at first got the same events, signed.
func TestEvents(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	const secretValue = "it-webhook-secret-0123456789"
	if r := e.akIn(t, strings.NewReader(secretValue+"\n"), "secret", "set", "WEBHOOK_SECRET"); r.code != 0 {
		t.Fatal(r)
	}
	e.h.Teardown() // stop the daemon the CLI started; serve it with a webhook
	// The endpoint's address, not listening yet: the endpoint is down.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startServe(t, e, "--webhook-url", "http://"+addr+"/hook")
	c := e.client(t)

	f := follow(c, client.EventsOptions{})
	time.Sleep(200 * time.Millisecond) // let the stream open
	type step struct {
		name, event string
		args        []string
	}
	for _, s := range []step{
		{"ev-a", "sandbox_created", []string{"sandbox", "create", "ev-a"}},
		{"ev-a", "command_finished", []string{"exec", "ev-a", "--", "sh", "-c", "exit 3"}},
		{"ev-a", "sandbox_removed", []string{"sandbox", "remove", "ev-a"}},
	} {
		r := e.ak(t, s.args...)
		done := time.Now()
		if s.event != "command_finished" && r.code != 0 {
			t.Fatal(r)
		}
		ev, at := f.waitFor(t, s.name, s.event)
		t.Logf("%s seen %v after the CLI returned", s.event, at.Sub(done).Round(time.Millisecond))
		if s.event == "command_finished" && (ev.Details["exit_code"] != float64(3) || ev.Details["duration_ms"] == nil) {
			t.Errorf("command_finished details: %v", ev.Details)
		}
	}
	f.waitFor(t, "ev-a", "command_executed")
	seen := f.stop()
	last := seen[len(seen)-1].ID

	// Missed while disconnected: exactly those, from Last-Event-ID.
	e.ok(t, "sandbox", "create", "ev-b")
	e.ok(t, "sandbox", "remove", "ev-b")
	recorded, err := c.Events(context.Background(), client.EventsOptions{After: &last}, 100)
	if err != nil || len(recorded) == 0 {
		t.Fatalf("recorded after %d: %v %v", last, recorded, err)
	}
	g := follow(c, client.EventsOptions{After: &last})
	g.waitFor(t, "ev-b", "sandbox_removed")
	resumed := g.stop()
	if ids(resumed) != ids(recorded) {
		t.Errorf("resumed after %d with events %s, want exactly the missed %s", last, ids(resumed), ids(recorded))
	}

	// The webhook comes up now and gets everything, in order, signed.
	rc := &hookReceiver{secret: []byte(secretValue)}
	hl, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: rc}
	go srv.Serve(hl)
	defer srv.Close()
	all := append(seen, resumed...)
	if !waitFor(60*time.Second, func() bool { return len(rc.events()) >= len(all) }) {
		t.Fatalf("the webhook got %s, want %s", ids(rc.events()), ids(all))
	}
	if got := ids(rc.events()[:len(all)]); got != ids(all) {
		t.Errorf("the webhook got %s, want %s", got, ids(all))
	}
	if rc.bad != 0 {
		t.Errorf("%d webhook deliveries failed to verify", rc.bad)
	}
}
