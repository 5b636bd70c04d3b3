package guestinit

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// A virtio-serial port is one byte stream, but the host opens a fresh
// agent connection per daemon connection (and one more for a graceful
// shutdown). So the port carries an outer yamux session: the host is its
// client and opens one stream per agent connection; each stream is handed
// to the agent as if it were an accepted socket, and the agent runs its own
// (inner) session on it as on every backend.
//
// The outer session lives as long as the host's supervisor holds the
// port's socket, which is the VM's whole life. Should the host disconnect
// (the port then reads EOF), the Listener drops the session and every
// connection on it, reopens the port and serves the next host. Bytes the
// old host left in flight could confuse the new session; the supervisor
// never reconnects (a dead supervisor's VM is killed by Cleanup), so this
// is a last resort, not a protocol.

// reopenDelay paces reopening the port after the host went away.
const reopenDelay = 200 * time.Millisecond

// OuterConfig is the yamux configuration of the outer session, shared
// with the host side. Keepalives are off: a paused VM cannot answer them.
func OuterConfig() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.EnableKeepAlive = false
	cfg.ConnectionWriteTimeout = 60 * time.Second
	cfg.StreamCloseTimeout = time.Minute
	cfg.MaxStreamWindowSize = 1 << 20
	cfg.AcceptBacklog = 64
	return cfg
}

// Listener accepts agent connections over a virtio-serial port. NewListener
// creates it; Close (idempotent) ends the current session and makes Accept
// return net.ErrClosed. Safe for concurrent use.
type Listener struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	sess   *yamux.Session // current session, nil between sessions
	closed bool
	done   chan struct{}
}

// NewListener returns a Listener on the port device at path; the port is
// opened by the first Accept.
func NewListener(path string, log *slog.Logger) *Listener {
	return &Listener{path: path, log: log, done: make(chan struct{})}
}

func (l *Listener) session() (*yamux.Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, net.ErrClosed
	}
	if l.sess != nil && !l.sess.IsClosed() {
		return l.sess, nil
	}
	fd, err := unix.Open(l.path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("guestinit: open %s: %w", l.path, err)
	}
	// A virtio port is not a terminal; a serial line (or a test's pty) is,
	// and must pass bytes unchanged.
	if term.IsTerminal(fd) {
		if _, err := term.MakeRaw(fd); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("guestinit: %s: raw mode: %w", l.path, err)
		}
	}
	s, err := yamux.Server(os.NewFile(uintptr(fd), l.path), OuterConfig())
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	l.sess = s
	return s, nil
}

// Accept returns the next agent connection the host opened.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		s, err := l.session()
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if err == nil {
			c, aerr := s.Accept()
			if aerr == nil {
				return c, nil
			}
			l.log.Info("host session on the agent port ended; reopening", "err", aerr)
			s.Close()
		} else {
			l.log.Warn("agent port", "err", err)
		}
		select {
		case <-l.done:
			return nil, net.ErrClosed
		case <-time.After(reopenDelay):
		}
	}
}

// Close ends the current session. Idempotent.
func (l *Listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.done)
	if l.sess != nil {
		l.sess.Close()
	}
	return nil
}

// Addr names the port.
func (l *Listener) Addr() net.Addr { return portAddr(l.path) }

type portAddr string

func (a portAddr) Network() string { return "virtio-serial" }
func (a portAddr) String() string  { return string(a) }
