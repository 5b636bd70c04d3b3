package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/coder/websocket"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

const (
	// StreamBufferSize bounds the output a Stream holds per stream (stdout,
	// stderr) that the caller has not read yet.
	StreamBufferSize = 1 << 20
	// streamReadLimit bounds one message from the server.
	streamReadLimit = 4 << 20
	// stdinChunk is the largest stdin message sent.
	stdinChunk = 32 << 10
)

// Stream is a running streaming exec (ExecStream, Attach) over a
// WebSocket. Create it with ExecStream or Attach and Close it when done;
// Close kills the process if it is still running.
//
// One goroutine, owned by the Stream, reads the connection: output goes to
// two buffers of StreamBufferSize bytes each, read through Stdout and
// Stderr. When a buffer is full that goroutine waits for the caller to read
// it, which also holds back the other stream and the exit message: drain
// both Stdout and Stderr (concurrently) while waiting, or Close the
// Stream. Methods are safe for concurrent use.
type Stream struct {
	conn   *websocket.Conn
	ctx    context.Context // the stream's lifetime; cancelled by Close
	cancel context.CancelFunc
	stop   func() bool // unregisters the caller's context watch
	pid    int

	stdin          *streamStdin
	stdout, stderr *outBuffer

	done chan struct{} // closed when the reader goroutine ends
	// exit and err are written by the reader goroutine before done closes.
	exit api.StreamControl
	err  error

	closeOnce sync.Once
}

// ExecStream starts a command in a sandbox with streaming stdio. ctx
// bounds the whole stream: when it ends, the connection closes and the
// daemon kills the process. It returns once the process has started, or
// with the daemon's error.
func (c *Client) ExecStream(ctx context.Context, name string, req api.ExecRequest) (*Stream, error) {
	return c.openStream(ctx, name, "exec/ws", req)
}

// Attach starts an interactive command with a TTY (a login shell when
// req.Command is empty); see ExecStream. With a TTY all output arrives on
// Stdout.
func (c *Client) Attach(ctx context.Context, name string, req api.ExecRequest) (*Stream, error) {
	return c.openStream(ctx, name, "attach", req)
}

func (c *Client) openStream(ctx context.Context, name, route string, req api.ExecRequest) (_ *Stream, retErr error) {
	p, err := sandboxPath(name, strings.Split(route, "/")...)
	if err != nil {
		return nil, err
	}
	first, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("client: encoding the request: %w", err)
	}
	h := http.Header{}
	c.setHeaders(h)
	conn, resp, err := websocket.Dial(ctx, c.urlFor(p, nil), &websocket.DialOptions{HTTPClient: c.http, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil {
			return nil, responseError(resp)
		}
		return nil, fmt.Errorf("agentkernel: opening the stream: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = conn.CloseNow()
		}
	}()
	conn.SetReadLimit(streamReadLimit)
	if err := conn.Write(ctx, websocket.MessageText, first); err != nil {
		return nil, fmt.Errorf("agentkernel: sending the exec request: %w", err)
	}
	typ, data, err := conn.Read(ctx)
	if err != nil {
		return nil, fmt.Errorf("agentkernel: waiting for the process to start: %w", err)
	}
	var m api.StreamControl
	if typ != websocket.MessageText || json.Unmarshal(data, &m) != nil {
		return nil, errors.New("agentkernel: the stream's first message is not a control message")
	}
	switch m.Type {
	case "started":
	case "error":
		return nil, controlError(m)
	default:
		return nil, fmt.Errorf("agentkernel: unexpected first message %q", m.Type)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Stream{
		conn: conn, ctx: sctx, cancel: cancel, pid: m.PID,
		stdout: newOutBuffer(), stderr: newOutBuffer(),
		done: make(chan struct{}),
	}
	s.stdin = &streamStdin{s: s}
	s.stop = context.AfterFunc(ctx, func() { _ = s.Close() })
	go s.read()
	return s, nil
}

// controlError is the error of an "error" control message.
func controlError(m api.StreamControl) error {
	msg := m.Message
	if msg == "" {
		msg = "the stream failed"
	}
	return &errdefs.Remote{Class: errdefs.FromCode(m.Code), Message: msg}
}

// read is the Stream's one connection reader.
func (s *Stream) read() {
	var err error
	exited := false
	defer func() {
		if !exited && s.err == nil {
			if err != nil && connectionLost(err) && s.ctx.Err() == nil {
				s.err = fmt.Errorf("%w before the command finished", ErrDaemonLost)
			} else {
				s.err = fmt.Errorf("agentkernel: the stream ended before the exit message: %w", err)
			}
		}
		end := io.EOF
		if s.err != nil {
			end = s.err
		}
		s.stdout.closeWrite(end)
		s.stderr.closeWrite(end)
		close(s.done)
	}()
	for {
		var typ websocket.MessageType
		var data []byte
		typ, data, err = s.conn.Read(s.ctx)
		if err != nil {
			return
		}
		if exited {
			continue // read on to answer the daemon's close
		}
		if typ == websocket.MessageBinary {
			if len(data) == 0 {
				continue
			}
			switch data[0] {
			case api.StreamStdout:
				s.stdout.write(data[1:])
			case api.StreamStderr:
				s.stderr.write(data[1:])
			}
			continue
		}
		var m api.StreamControl
		if json.Unmarshal(data, &m) != nil {
			s.err = errors.New("agentkernel: invalid control message from the daemon")
			return
		}
		switch m.Type {
		case "exit":
			s.exit, exited = m, true
			s.stdout.closeWrite(io.EOF)
			s.stderr.closeWrite(io.EOF)
		case "error":
			s.err = controlError(m)
			return
		}
	}
}

// PID is the process's id inside the sandbox.
func (s *Stream) PID() int { return s.pid }

// Stdin is the process's standard input; closing it sends end-of-file.
func (s *Stream) Stdin() io.WriteCloser { return s.stdin }

// Stdout is the process's standard output (with a TTY, all its output).
func (s *Stream) Stdout() io.Reader { return s.stdout }

// Stderr is the process's standard error.
func (s *Stream) Stderr() io.Reader { return s.stderr }

// Resize sets the TTY's size.
func (s *Stream) Resize(rows, cols uint16) error {
	return s.control(api.StreamControl{Type: "resize", Rows: rows, Cols: cols})
}

// Signal sends a signal (a Linux signal number) to the process.
func (s *Stream) Signal(sig int) error {
	return s.control(api.StreamControl{Type: "signal", Signal: sig})
}

func (s *Stream) control(m api.StreamControl) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := s.conn.Write(s.ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("agentkernel: sending %s: %w", m.Type, err)
	}
	return nil
}

// Wait waits for the process to exit and returns the exit message
// (ExitCode, Signal, TimedOut, Message). It fails if the stream breaks
// first. See the type's doc on draining output.
func (s *Stream) Wait() (api.StreamControl, error) {
	<-s.done
	if s.exit.Type == "exit" {
		return s.exit, nil
	}
	return api.StreamControl{}, s.err
}

// Close ends the stream: it closes the connection (the daemon kills the
// process if it still runs), unblocks readers and waits for the reader
// goroutine. It is idempotent and returns nil.
func (s *Stream) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		s.stdout.abort()
		s.stderr.abort()
		select {
		case <-s.done:
			_ = s.conn.CloseNow()
		default:
			_ = s.conn.Close(websocket.StatusNormalClosure, "")
			_ = s.conn.CloseNow()
		}
		s.cancel()
		<-s.done
	})
	return nil
}

// streamStdin writes stdin messages.
type streamStdin struct {
	s      *Stream
	mu     sync.Mutex // guards closed
	closed bool
}

func (w *streamStdin) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, os.ErrClosed
	}
	n := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), stdinChunk)]
		msg := make([]byte, 1+len(chunk))
		msg[0] = api.StreamStdin
		copy(msg[1:], chunk)
		if err := w.s.conn.Write(w.s.ctx, websocket.MessageBinary, msg); err != nil {
			return n, fmt.Errorf("agentkernel: writing stdin: %w", err)
		}
		n += len(chunk)
		b = b[len(chunk):]
	}
	return n, nil
}

// Close sends end-of-file once.
func (w *streamStdin) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	return w.s.control(api.StreamControl{Type: "stdin_eof"})
}

// outBuffer is a bounded pipe from the reader goroutine to the caller.
type outBuffer struct {
	mu   sync.Mutex
	cond *sync.Cond
	// buf holds unread output, at most StreamBufferSize bytes (or one
	// larger message when it was empty).
	buf []byte
	// end is returned once buf is drained after closeWrite; nil while open.
	end error
	// aborted buffers discard writes (Close).
	aborted bool
}

func newOutBuffer() *outBuffer {
	b := &outBuffer{}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// write appends p, waiting while the buffer is full.
func (b *outBuffer) write(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.aborted && b.end == nil && len(b.buf) > 0 && len(b.buf)+len(p) > StreamBufferSize {
		b.cond.Wait()
	}
	if b.aborted || b.end != nil {
		return
	}
	b.buf = append(b.buf, p...)
	b.cond.Broadcast()
}

func (b *outBuffer) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.buf) == 0 && b.end == nil {
		b.cond.Wait()
	}
	if len(b.buf) == 0 {
		return 0, b.end
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	if len(b.buf) == 0 {
		b.buf = nil
	}
	b.cond.Broadcast()
	return n, nil
}

// closeWrite makes readers see err (io.EOF for a normal end) after the
// buffered output. The first call wins.
func (b *outBuffer) closeWrite(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.end == nil {
		b.end = err
	}
	b.cond.Broadcast()
}

// abort stops the buffer for Close: output of a stream that has ended
// stays readable to its end; otherwise buffered output is dropped and
// reads end with os.ErrClosed.
func (b *outBuffer) abort() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.aborted = true
	if b.end == nil {
		b.buf, b.end = nil, os.ErrClosed
	}
	b.cond.Broadcast()
}
