package microvm

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeQMP answers like QEMU: a greeting, then one reply per line read,
// from replies in order.
func fakeQMP(t *testing.T, greeting string, replies ...string) net.Conn {
	host, vm := net.Pipe()
	go func() {
		defer vm.Close()
		vm.Write([]byte(greeting + "\r\n"))
		br := bufio.NewReader(vm)
		for _, r := range replies {
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
			vm.Write([]byte(r + "\r\n"))
		}
		br.ReadString('\n')
	}()
	return host
}

const greeting = `{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`

func TestQMP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	q, err := newQMP(ctx, fakeQMP(t, greeting,
		`{"return": {}}`,
		`{"event": "VSERPORT_CHANGE", "data": {"id": "agentport", "open": true}}`+"\r\n"+`{"return": {"status": "running"}}`,
		`{"error": {"class": "GenericError", "desc": "nope"}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	r, err := q.run(ctx, "query-status", nil)
	if err != nil || !strings.Contains(string(r), "running") {
		t.Fatalf("query-status: %s %v", r, err)
	}
	select {
	case ev := <-q.events:
		if ev.Event != "VSERPORT_CHANGE" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(time.Second):
		t.Fatal("no event")
	}
	if _, err := q.run(ctx, "cont", nil); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("error reply: %v", err)
	}
}

func TestQMPBadGreeting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := newQMP(ctx, fakeQMP(t, `{"hello": 1}`)); err == nil {
		t.Fatal("a bad greeting was accepted")
	}
	if _, err := newQMP(ctx, fakeQMP(t, strings.Repeat("x", maxQMPLine+10))); err == nil {
		t.Fatal("an oversized greeting was accepted")
	}
}

func FuzzQMPMessages(f *testing.F) {
	f.Add(`{"return": {}}`, `{"event":"SHUTDOWN","data":{"reason":"guest-shutdown"}}`)
	f.Add(`{"error":{"class":"x","desc":"y"}}`, `not json`)
	f.Fuzz(func(t *testing.T, a, b string) {
		if strings.ContainsAny(a+b, "\r\n") {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		q, err := newQMP(ctx, fakeQMP(t, greeting, a, b))
		if err != nil {
			return
		}
		q.run(ctx, "x", nil)
		q.Close()
	})
}
