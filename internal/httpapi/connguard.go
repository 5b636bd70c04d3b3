package httpapi

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of ConnGuard.
const (
	// DefaultMaxWaitingConns is how many connections a server keeps that
	// have sent no complete request yet (new, or idle between requests)
	// before it closes the oldest.
	DefaultMaxWaitingConns = 256
	// DefaultConnGrace is how long a waiting connection is safe from
	// eviction: a real client sends its request at once, so a burst of
	// fresh connections is never cut, only ones left waiting.
	DefaultConnGrace = time.Second
)

// ConnGuard bounds the connections an http.Server holds that are not
// serving a request: a slowloris client that opens thousands and sends a
// header byte now and then, or one that leaves keep-alive connections idle,
// would otherwise hold a descriptor each until ReadHeaderTimeout or
// IdleTimeout, and at the process's descriptor limit the daemon could no
// longer accept on any listener or start a sandbox. Over the bound, the
// oldest waiting connection past its grace is closed, and over four times
// the bound the oldest is closed regardless (a burst that large is an
// attack, or would end at the descriptor limit anyway); a connection that is
// serving a request (or was hijacked for a stream) is never touched, and a
// client whose idle keep-alive connection was closed retries on a new one.
// Install it as the server's ConnState.
type ConnGuard struct {
	max   int
	grace time.Duration

	mu      sync.Mutex                 // guards waiting and byConn
	waiting *list.List                 // of *waitingConn, oldest first
	byConn  map[net.Conn]*list.Element // into waiting
	evicted int                        // connections closed, for tests and logs
}

type waitingConn struct {
	conn  net.Conn
	since time.Time
}

// NewConnGuard returns a guard keeping at most max waiting connections,
// each safe for grace after it started waiting.
func NewConnGuard(max int, grace time.Duration) *ConnGuard {
	return &ConnGuard{max: max, grace: grace, waiting: list.New(), byConn: map[net.Conn]*list.Element{}}
}

// ConnState is the http.Server hook.
func (g *ConnGuard) ConnState(c net.Conn, s http.ConnState) {
	var evict []net.Conn
	g.mu.Lock()
	switch s {
	case http.StateNew, http.StateIdle:
		if e, ok := g.byConn[c]; ok {
			g.waiting.Remove(e)
		}
		g.byConn[c] = g.waiting.PushBack(&waitingConn{conn: c, since: time.Now()})
		evict = g.overLocked(time.Now())
	default: // active, hijacked or closed: not waiting
		if e, ok := g.byConn[c]; ok {
			g.waiting.Remove(e)
			delete(g.byConn, c)
		}
	}
	g.mu.Unlock()
	for _, c := range evict {
		c.Close() // its server goroutine then reports StateClosed
	}
}

// overLocked takes the connections to close out of the waiting list: the
// oldest ones past their grace, until the list is within max, and the
// oldest regardless while it is over 4*max.
func (g *ConnGuard) overLocked(now time.Time) []net.Conn {
	var out []net.Conn
	for g.waiting.Len() > g.max {
		e := g.waiting.Front()
		w := e.Value.(*waitingConn)
		if now.Sub(w.since) < g.grace && g.waiting.Len() <= 4*g.max {
			break // everything behind it is younger still
		}
		g.waiting.Remove(e)
		delete(g.byConn, w.conn)
		out = append(out, w.conn)
		g.evicted++
	}
	return out
}

// Evicted reports how many connections the guard has closed.
func (g *ConnGuard) Evicted() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.evicted
}

// Timeouts of the servers NewServer makes.
const (
	// readHeaderTimeout bounds how long a connection may take to send a
	// request's headers.
	readHeaderTimeout = 30 * time.Second
	// idleTimeout closes keep-alive connections left unused this long.
	idleTimeout = 2 * time.Minute
)

// NewServer returns the http.Server the daemon serves h with on any
// listener: headers within readHeaderTimeout, idle connections closed
// after idleTimeout, and a ConnGuard over the connections that wait.
// There is no overall read or write timeout: exec streams, attach and
// event streams last as long as their callers want.
func NewServer(h http.Handler) *http.Server {
	g := NewConnGuard(DefaultMaxWaitingConns, DefaultConnGrace)
	return &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout, ConnState: g.ConnState}
}
