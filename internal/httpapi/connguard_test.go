package httpapi

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// pipeConn is one end of a net.Pipe whose Close the test can see.
func pipeConn(t *testing.T) (net.Conn, func() bool) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, func() bool {
		// A closed pipe end fails writes at once; an open one blocks, so
		// write with a deadline.
		a.SetWriteDeadline(time.Now().Add(time.Millisecond))
		_, err := a.Write([]byte{0})
		return err != nil && !isTimeout(err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestConnGuard(t *testing.T) {
	const grace = 50 * time.Millisecond
	g := NewConnGuard(2, grace)
	old1, closed1 := pipeConn(t)
	old2, closed2 := pipeConn(t)
	busy, closedBusy := pipeConn(t)
	g.ConnState(old1, http.StateNew)
	g.ConnState(old2, http.StateIdle)
	g.ConnState(busy, http.StateNew)
	g.ConnState(busy, http.StateActive) // serving a request: never evicted
	time.Sleep(2 * grace)

	// Two fresh connections over the bound: the oldest waiting ones past
	// their grace go, in order; the fresh ones stay.
	fresh1, closedFresh1 := pipeConn(t)
	fresh2, closedFresh2 := pipeConn(t)
	g.ConnState(fresh1, http.StateNew)
	if !closed1() || closed2() {
		t.Fatalf("after one over the bound: oldest closed %v, next closed %v; want true, false", closed1(), closed2())
	}
	g.ConnState(fresh2, http.StateNew)
	if !closed2() {
		t.Fatal("second oldest not closed")
	}
	if closedFresh1() || closedFresh2() || closedBusy() {
		t.Fatalf("closed a fresh (%v, %v) or active (%v) connection", closedFresh1(), closedFresh2(), closedBusy())
	}
	if g.Evicted() != 2 {
		t.Fatalf("Evicted = %d, want 2", g.Evicted())
	}

	// Within the grace, a burst stays until it is four times the bound;
	// beyond that the oldest go regardless.
	var burst []func() bool
	for i := 0; i < 4*2+1-2; i++ { // fresh1 and fresh2 already wait
		c, closed := pipeConn(t)
		g.ConnState(c, http.StateNew)
		burst = append(burst, closed)
	}
	if !closedFresh1() {
		t.Fatal("over four times the bound, the oldest young connection was not closed")
	}
	for i, closed := range burst {
		if closed() {
			t.Fatalf("burst connection %d closed", i)
		}
	}
	g.ConnState(fresh2, http.StateClosed)
	g.ConnState(busy, http.StateClosed)
	g.mu.Lock()
	n := len(g.byConn)
	g.mu.Unlock()
	if n != len(burst) {
		t.Fatalf("guard tracks %d connections, want %d", n, len(burst))
	}
}
