package agentproto

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Exec starts a process in the sandbox and returns once it runs, or once
// the agent has found it cannot run (then Wait reports Code 127 or 126).
// ctx bounds only the start: to stop the process use req.Timeout, Signal
// or Close.
func (c *Client) Exec(ctx context.Context, req ExecRequest) (*Process, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	st, err := c.open(ctx, &Request{Op: OpExec, Exec: &req})
	if err != nil {
		return nil, err
	}
	f, err := st.read()
	if err == nil && f.Type != FrameStarted {
		err = st.unexpected(f)
	}
	var s Started
	if err == nil {
		if err = DecodeJSON(f, &s); err != nil {
			err = st.wrap(err)
		}
	}
	if err == nil && !st.stop() {
		err = st.wrap(ctx.Err()) // ctx ended just as the process started
	}
	if err != nil {
		if s.ID != "" {
			c.control(&Request{Op: OpSignal, ID: s.ID, Signal: int(syscall.SIGKILL)})
		}
		st.abort()
		return nil, err
	}
	st.ctx = context.Background() // from now on ctx does not apply
	p := &Process{
		c: c, st: st, pid: s.PID, id: s.ID, tty: req.TTY, stdinOn: req.Stdin,
		done: make(chan struct{}),
	}
	p.stdoutR, p.stdoutW = io.Pipe()
	p.stderrR, p.stderrW = io.Pipe()
	p.stdin = &stdinWriter{p: p}
	go p.demux()
	return p, nil
}

// Process is a process started by Client.Exec. Its output arrives through
// Stdout and Stderr, which the caller must drain (concurrently with Wait);
// an undrained pipe stops the process's output, by flow control, as a full
// pipe would. Close releases it; calling Close after Wait is harmless.
//
// One goroutine (demux) reads the stream until the exit status; methods are
// safe for concurrent use.
type Process struct {
	c       *Client
	st      *stream
	pid     int
	id      string
	tty     bool
	stdinOn bool

	stdin            *stdinWriter
	stdoutR, stderrR *io.PipeReader
	stdoutW, stderrW *io.PipeWriter

	done   chan struct{} // closed by demux when it returns
	status ExitStatus    // written by demux before done is closed
	err    error         // likewise
	// bytesOut counts the stdout and stderr payload received; written by
	// demux, read after done (BytesOut).
	bytesOut int64

	closeOnce sync.Once
}

// PID is the process's pid in the sandbox (0 if it could not be started).
func (p *Process) PID() int { return p.pid }

// Stdin is the process's input; Close sends EOF (with a TTY, ^D). Writes
// fail when ExecRequest.Stdin was false.
func (p *Process) Stdin() io.WriteCloser { return p.stdin }

// Stdout is the process's output; it returns io.EOF after the last byte.
func (p *Process) Stdout() io.Reader { return p.stdoutR }

// Stderr is the process's error output; with a TTY it is empty.
func (p *Process) Stderr() io.Reader { return p.stderrR }

// Wait waits for the exit status. Stdout and Stderr must be drained
// concurrently. The error is non-nil only when the status was not received
// (session lost, protocol error).
func (p *Process) Wait() (ExitStatus, error) {
	<-p.done
	return p.status, p.err
}

// BytesOut is how many bytes the process wrote to stdout and stderr
// (with a TTY, to the terminal). It waits for the exit, like Wait.
func (p *Process) BytesOut() int64 {
	<-p.done
	return p.bytesOut
}

// Resize changes the PTY's window size.
func (p *Process) Resize(rows, cols uint16) error {
	if !p.tty {
		return fmt.Errorf("%w: resize: process has no TTY", errdefs.ErrFailedPrecondition)
	}
	return p.signalOrResize(&Request{Op: OpResize, ID: p.id, Rows: rows, Cols: cols})
}

// Signal sends sig to the process's process group.
func (p *Process) Signal(sig syscall.Signal) error {
	return p.signalOrResize(&Request{Op: OpSignal, ID: p.id, Signal: int(sig)})
}

func (p *Process) signalOrResize(req *Request) error {
	select {
	case <-p.done:
		return fmt.Errorf("%w: %s: process has exited", errdefs.ErrFailedPrecondition, req.Op)
	default:
	}
	if p.id == "" {
		return fmt.Errorf("%w: %s: process did not start", errdefs.ErrFailedPrecondition, req.Op)
	}
	return p.c.control(req)
}

// closeDrainTimeout bounds how long Close reads what the agent still sends.
const closeDrainTimeout = 2 * time.Second

// Close abandons the process: if it still runs, its process group is
// killed; the stream and pipes are released. Idempotent.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		select {
		case <-p.done:
		default:
			if p.id != "" {
				p.c.control(&Request{Op: OpSignal, ID: p.id, Signal: int(syscall.SIGKILL)})
			}
		}
		p.st.s.Close()
		p.stdoutR.Close()
		p.stderrR.Close()
		select {
		case <-p.done:
		case <-time.After(closeDrainTimeout):
			p.st.abort() // an agent that keeps talking: stop listening
			<-p.done
		}
	})
	return nil
}

// control runs a signal/resize op on its own stream, so that it is never
// stuck behind stdin data that the process does not read.
func (c *Client) control(req *Request) error {
	ctx, cancel := context.WithTimeout(context.Background(), ControlTimeout)
	defer cancel()
	_, err := c.call(ctx, req)
	return err
}

// demux reads the exec stream until the exit status.
func (p *Process) demux() {
	status, err := p.readOutput()
	p.status, p.err = status, err
	if err != nil {
		p.stdoutW.CloseWithError(err)
		p.stderrW.CloseWithError(err)
	} else {
		p.stdoutW.Close()
		p.stderrW.Close()
	}
	p.st.close()
	close(p.done)
}

func (p *Process) readOutput() (ExitStatus, error) {
	for {
		f, err := p.st.read()
		if err != nil {
			return ExitStatus{}, err
		}
		switch f.Type {
		case FrameStdout:
			p.bytesOut += int64(len(f.Payload))
			p.stdoutW.Write(f.Payload) // fails only after Close: discard
		case FrameStderr:
			p.bytesOut += int64(len(f.Payload))
			p.stderrW.Write(f.Payload)
		case FrameExit:
			var s ExitStatus
			if err := DecodeJSON(f, &s); err != nil {
				return ExitStatus{}, p.st.wrap(err)
			}
			return s, nil
		default:
			return ExitStatus{}, p.st.unexpected(f)
		}
	}
}

// stdinWriter sends FrameStdin frames; mu serialises writers and Close.
type stdinWriter struct {
	p *Process

	mu     sync.Mutex
	closed bool
}

func (w *stdinWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.check(); err != nil {
		return 0, err
	}
	for n := 0; n < len(b); {
		k := min(len(b)-n, ChunkSize)
		if err := WriteFrame(w.p.st.s, FrameStdin, b[n:n+k]); err != nil {
			return n, w.p.st.wrap(err)
		}
		n += k
	}
	return len(b), nil
}

func (w *stdinWriter) check() error {
	switch {
	case !w.p.stdinOn:
		return fmt.Errorf("%w: stdin was not requested", errdefs.ErrFailedPrecondition)
	case w.closed:
		return fmt.Errorf("%w: stdin is closed", errdefs.ErrFailedPrecondition)
	}
	select {
	case <-w.p.done:
		return fmt.Errorf("%w: process has exited", errdefs.ErrFailedPrecondition)
	default:
	}
	return nil
}

// Close sends EOF; later calls do nothing.
func (w *stdinWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || !w.p.stdinOn {
		return nil
	}
	w.closed = true
	select {
	case <-w.p.done:
		return nil
	default:
	}
	if err := WriteFrame(w.p.st.s, FrameStdinEOF, nil); err != nil {
		return w.p.st.wrap(err)
	}
	return nil
}
