package agentproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Timeouts of the client. They bound what a silent agent can cost the host.
const (
	// HelloTimeout bounds NewClient's wait for the agent's hello.
	HelloTimeout = 10 * time.Second
	// ControlTimeout bounds Process.Signal, Process.Resize and the kill
	// that Process.Close sends.
	ControlTimeout = 10 * time.Second
)

// helloTimeout is HelloTimeout; tests shorten it.
var helloTimeout = HelloTimeout

// Client is the host's side of one session with a guest agent. The agent is
// untrusted: whatever it sends, the client returns errors, never panics, and
// every call is bounded by its ctx (or a named timeout).
//
// NewClient creates it; Close (idempotent) ends the session and closes the
// connection. All methods are safe for concurrent use; each call is its own
// yamux stream, so a slow call does not block the others.
type Client struct {
	sess *yamux.Session
	info HelloInfo

	closeOnce  sync.Once
	acceptDone chan struct{} // closed when refuseStreams returns
}

// NewClient starts a yamux client session over conn, which it owns from now
// on, and exchanges hellos. It fails, closing conn, when the agent does not
// answer within HelloTimeout or speaks another protocol version.
func NewClient(conn io.ReadWriteCloser) (*Client, error) {
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	// No keepalive: a paused sandbox's agent cannot answer pings, and
	// pausing must not end the session. A dead agent shows as EOF.
	cfg.EnableKeepAlive = false
	cfg.StreamCloseTimeout = time.Minute
	sess, err := yamux.Client(conn, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("agent session: %w", err)
	}
	c := &Client{sess: sess, acceptDone: make(chan struct{})}
	go c.refuseStreams()

	ctx, cancel := context.WithTimeout(context.Background(), helloTimeout)
	defer cancel()
	p, err := c.call(ctx, &Request{Op: OpHello, Version: Version})
	if err == nil {
		err = DecodeJSON(Frame{Type: FrameResult, Payload: p}, &c.info)
	}
	if err == nil && c.info.Version != Version {
		err = fmt.Errorf("%w: agent speaks protocol version %d, this host speaks version %d",
			errdefs.ErrFailedPrecondition, c.info.Version, Version)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("agent hello: %w", err)
	}
	return c, nil
}

// refuseStreams ends the session if the agent opens a stream: the agent
// never does, and a stream it opened could buffer host memory.
func (c *Client) refuseStreams() {
	defer close(c.acceptDone)
	s, err := c.sess.AcceptStream()
	if err != nil {
		return
	}
	s.Close()
	c.sess.Close()
}

// Info returns what the agent said in its hello.
func (c *Client) Info() HelloInfo { return c.info }

// Done is closed when the session is gone (Close, or the connection died).
func (c *Client) Done() <-chan struct{} { return c.sess.CloseChan() }

// Close ends the session and closes the connection. It is idempotent;
// calls in progress fail with errdefs.ErrUnavailable.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.sess.Close()
		<-c.acceptDone
	})
	return nil
}

// Ping checks that the agent answers.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.call(ctx, &Request{Op: OpPing})
	return err
}

// Disk reports the sandbox's writable disk (see DiskStat). An agent older
// than this op answers with an error classed errdefs.ErrNotImplemented.
func (c *Client) Disk(ctx context.Context) (DiskStat, error) {
	var d DiskStat
	err := c.callJSON(ctx, &Request{Op: OpDisk}, &d)
	return d, err
}

// Configure sets the agent's defaults for the processes it starts from
// now on (see Configure).
func (c *Client) Configure(ctx context.Context, cfg Configure) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	_, err := c.call(ctx, &Request{Op: OpConfigure, Configure: &cfg})
	return err
}

// Shutdown asks the agent to stop every process (SIGTERM, a short grace,
// SIGKILL), sync filesystems and exit 0. The session ends with it.
func (c *Client) Shutdown(ctx context.Context) error {
	st, err := c.open(ctx, &Request{Op: OpShutdown})
	if err != nil {
		return err
	}
	defer st.close()
	f, err := ReadFrame(st.s)
	switch {
	case err == nil && f.Type == FrameResult:
		return nil
	case err == nil:
		return st.unexpected(f)
	case ctx.Err() == nil && (errors.Is(err, io.EOF) || errors.Is(err, yamux.ErrSessionShutdown) || c.sess.IsClosed()):
		// The agent exited before its answer reached us (the session can
		// report its end before IsClosed says so: seen under load in CI).
		return nil
	}
	return st.wrap(err)
}

// stream is one op's yamux stream with its context: when ctx ends, the
// stream's deadline passes and blocked reads and writes return.
type stream struct {
	s    *yamux.Stream
	op   string
	ctx  context.Context
	stop func() bool // detaches ctx from the stream
}

var past = time.Unix(1, 0)

// open opens a stream and sends req on it.
func (c *Client) open(ctx context.Context, req *Request) (*stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("agent %s: %w", req.Op, err)
	}
	s, err := c.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w: %v", req.Op, errdefs.ErrUnavailable, err)
	}
	st := &stream{s: s, op: req.Op, ctx: ctx}
	st.stop = context.AfterFunc(ctx, func() { s.SetDeadline(past) })
	if err := WriteJSON(s, FrameRequest, req); err != nil {
		st.close()
		return nil, st.wrap(err)
	}
	return st, nil
}

// close detaches ctx and half-closes the stream.
func (st *stream) close() {
	st.stop()
	st.s.Close()
}

// abort makes blocked reads and writes on the stream return, then closes it.
func (st *stream) abort() {
	st.s.SetDeadline(past)
	st.close()
}

// wrap turns a transport or decoding error into the client's error.
func (st *stream) wrap(err error) error {
	switch {
	case st.ctx.Err() != nil:
		return fmt.Errorf("agent %s: %w", st.op, st.ctx.Err())
	case errors.Is(err, ErrProtocol):
		return fmt.Errorf("agent %s: %w", st.op, err)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("agent %s: %w: stream ended early", st.op, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("agent %s: %w: %v", st.op, errdefs.ErrUnavailable, err)
}

func (st *stream) unexpected(f Frame) error {
	return fmt.Errorf("agent %s: %w: unexpected %s frame", st.op, ErrProtocol, f.Type)
}

// remote decodes an error frame into the agent's error.
func (st *stream) remote(f Frame) error {
	var we WireError
	if err := DecodeJSON(f, &we); err != nil {
		return st.wrap(err)
	}
	return we.Err()
}

// read reads one frame; an error frame becomes the agent's error.
func (st *stream) read() (Frame, error) {
	f, err := ReadFrame(st.s)
	if err != nil {
		return f, st.wrap(err)
	}
	if f.Type == FrameError {
		return f, st.remote(f)
	}
	return f, nil
}

// result reads the op's Result frame and returns its payload.
func (st *stream) result() ([]byte, error) {
	f, err := st.read()
	if err != nil {
		return nil, err
	}
	if f.Type != FrameResult {
		return nil, st.unexpected(f)
	}
	return f.Payload, nil
}

// call runs an op that is one request and one result.
func (c *Client) call(ctx context.Context, req *Request) ([]byte, error) {
	st, err := c.open(ctx, req)
	if err != nil {
		return nil, err
	}
	defer st.close()
	return st.result()
}

// callJSON runs call and decodes the result into v.
func (c *Client) callJSON(ctx context.Context, req *Request, v any) error {
	p, err := c.call(ctx, req)
	if err != nil {
		return err
	}
	if err := DecodeJSON(Frame{Type: FrameResult, Payload: p}, v); err != nil {
		return fmt.Errorf("agent %s: %w", req.Op, err)
	}
	return nil
}
