package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// forwarder reaches one port on a pod's loopback through the API server's
// pods/portforward subresource. It keeps one SPDY connection to the API
// server and opens a pair of streams (error, data) on it per dial, as
// kubectl port-forward does per accepted connection; a dial after the
// connection broke makes a new one. Safe for concurrent use; Close ends
// the connection and every stream on it.
type forwarder struct {
	cfg  *rest.Config
	url  func() (string, error) // the portforward URL of the pod
	port int
	life context.Context // cancelled when the instance stops

	mu     sync.Mutex
	conn   httpstream.Connection // nil until the first dial or after a break
	nextID int
	closed bool
}

// dial opens a new stream pair to the port. The pod's side connects to
// the port only when the data stream arrives; a refused connection shows
// as an error message on the error stream and the end of the data stream,
// so a caller that must know the port answers speaks to it first.
func (f *forwarder) dial(ctx context.Context) (net.Conn, error) {
	conn, id, err := f.connection(ctx)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set(corev1.PortHeader, strconv.Itoa(f.port))
	h.Set(corev1.PortForwardRequestIDHeader, strconv.Itoa(id))
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	errStream, err := conn.CreateStream(h)
	if err != nil {
		f.broken(conn)
		return nil, fmt.Errorf("%w: portforward error stream: %v", errdefs.ErrUnavailable, err)
	}
	errStream.Close() // nothing is written to it
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		conn.RemoveStreams(errStream)
		f.broken(conn)
		return nil, fmt.Errorf("%w: portforward data stream: %v", errdefs.ErrUnavailable, err)
	}
	sc := &streamConn{conn: conn, data: data, errs: errStream, remoteErr: make(chan struct{})}
	go sc.readRemoteError()
	return sc, nil
}

// connection returns the live SPDY connection, dialling one if needed,
// and a fresh request id for it.
func (f *forwarder) connection(ctx context.Context) (httpstream.Connection, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, 0, fmt.Errorf("%w: the sandbox is stopped", errdefs.ErrUnavailable)
	}
	if f.conn != nil {
		select {
		case <-f.conn.CloseChan():
			f.conn = nil
		default:
		}
	}
	if f.conn == nil {
		u, err := f.url()
		if err != nil {
			return nil, 0, err
		}
		tr, upgrader, err := spdy.RoundTripperFor(f.cfg)
		if err != nil {
			return nil, 0, fmt.Errorf("portforward transport: %w", err)
		}
		// The upgraded connection outlives ctx (one dial's), so the
		// request carries the forwarder's lifetime and ctx only bounds
		// the wait for it.
		req, err := http.NewRequestWithContext(f.life, http.MethodPost, u, nil)
		if err != nil {
			return nil, 0, err
		}
		type result struct {
			conn httpstream.Connection
			err  error
		}
		done := make(chan result, 1)
		go func() {
			conn, _, err := spdy.Negotiate(upgrader, &http.Client{Transport: tr}, req, portforward.PortForwardProtocolV1Name)
			done <- result{conn, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-ctx.Done():
			go func() {
				if r := <-done; r.conn != nil {
					r.conn.Close()
				}
			}()
			return nil, 0, fmt.Errorf("%w: portforward: %v", errdefs.ErrUnavailable, ctx.Err())
		}
		if r.err != nil {
			return nil, 0, fmt.Errorf("%w: portforward: %v", errdefs.ErrUnavailable, r.err)
		}
		f.conn, f.nextID = r.conn, 0
	}
	id := f.nextID
	f.nextID++
	return f.conn, id, nil
}

// broken forgets conn after a stream could not be made on it.
func (f *forwarder) broken(conn httpstream.Connection) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn == conn {
		f.conn = nil
		conn.Close()
	}
}

// Close ends the connection; later dials fail. Idempotent.
func (f *forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
	return nil
}

// streamConn is one forwarded connection as a net.Conn. Close resets the
// data stream and removes both streams from the shared connection, which
// stays open for other dials.
type streamConn struct {
	conn httpstream.Connection
	data httpstream.Stream
	errs httpstream.Stream

	closeOnce sync.Once
	remoteErr chan struct{} // closed once the error stream has ended
	errMsg    string        // the pod side's error; valid after remoteErr
}

func (c *streamConn) readRemoteError() {
	msg, _ := io.ReadAll(c.errs)
	c.errMsg = string(msg)
	close(c.remoteErr)
	if len(msg) > 0 {
		c.data.Reset() // the pod side failed: end reads at once
	}
}

func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.data.Read(p)
	if err != nil && n == 0 {
		select {
		case <-c.remoteErr:
			if c.errMsg != "" {
				return 0, fmt.Errorf("%w: portforward: %s", errdefs.ErrUnavailable, c.errMsg)
			}
		default:
		}
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) { return c.data.Write(p) }

func (c *streamConn) Close() error {
	c.closeOnce.Do(func() {
		c.data.Reset()
		c.conn.RemoveStreams(c.data, c.errs)
	})
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return addr("apiserver") }
func (c *streamConn) RemoteAddr() net.Addr { return addr("pod") }

// The agent protocol multiplexes over this stream and keeps its deadlines
// on its own streams, so none are needed here.
func (c *streamConn) SetDeadline(time.Time) error      { return errNoDeadline }
func (c *streamConn) SetReadDeadline(time.Time) error  { return errNoDeadline }
func (c *streamConn) SetWriteDeadline(time.Time) error { return errNoDeadline }

type addr string

func (a addr) Network() string { return "portforward" }
func (a addr) String() string  { return string(a) }

var errNoDeadline = errors.New("kubernetes: portforward streams have no deadlines")
