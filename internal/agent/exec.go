package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Output draining after a process exits: its pipes are read until EOF, or
// until they stay empty for drainIdle (a descendant still holds them), at
// most drainMaxBytes more bytes or for drainMaxTime.
const (
	drainIdle     = 100 * time.Millisecond
	drainMaxBytes = 4 << 20
	drainMaxTime  = 30 * time.Second
)

var past = time.Unix(1, 0)

// proc is a process the agent started, as seen by signal and resize ops.
type proc struct {
	id   string
	pid  int
	pty  *os.File      // PTY master, nil without a TTY
	done chan struct{} // closed once the process has been reaped
}

// signal sends sig to the process's group.
func (p *proc) signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return fmt.Errorf("%w: process %s has exited", errdefs.ErrFailedPrecondition, p.id)
	default:
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("signal process %s: %w", p.id, err)
	}
	return nil
}

func (p *proc) resize(rows, cols uint16) error {
	if p.pty == nil {
		return fmt.Errorf("%w: process %s has no TTY", errdefs.ErrFailedPrecondition, p.id)
	}
	select {
	case <-p.done:
		return fmt.Errorf("%w: process %s has exited", errdefs.ErrFailedPrecondition, p.id)
	default:
	}
	return setWinsize(p.pty, rows, cols)
}

func (s *Server) allProcs() []*proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*proc
	for _, p := range s.execs {
		out = append(out, p)
	}
	return append(out, s.bg.procs()...)
}

// withExec runs fn on a running exec'd process and answers with an empty
// Result.
func (s *Server) withExec(st io.Writer, id string, fn func(*proc) error) error {
	s.mu.Lock()
	p := s.execs[id]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: no running process %q", errdefs.ErrNotFound, id)
	}
	if err := fn(p); err != nil {
		return err
	}
	return result(st, struct{}{})
}

// handleExec runs one exec stream: Started, output, Exit. The host's stdin
// frames are read by a second goroutine; the host closing its side of the
// stream before the Exit frame abandons the process, which is then killed.
func (s *Server) handleExec(ctx context.Context, st *yamux.Stream, req *agentproto.ExecRequest) error {
	plan, fail, err := s.prepare(req)
	if err != nil {
		return err
	}
	var c *child
	if fail == nil {
		if c, err = start(plan); err != nil {
			if fail = forkFailure(req.Argv[0], err); fail == nil {
				return fmt.Errorf("exec: %w", err)
			}
		}
	}
	if fail != nil {
		agentproto.WriteJSON(st, agentproto.FrameStarted, agentproto.Started{})
		agentproto.WriteChunked(st, agentproto.FrameStderr, []byte(fail.Error+"\n"))
		return agentproto.WriteJSON(st, agentproto.FrameExit, fail)
	}
	p := &proc{id: newID("p-"), pid: c.pid, pty: c.pty, done: make(chan struct{})}
	s.mu.Lock()
	s.execs[p.id] = p
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.execs, p.id)
		s.mu.Unlock()
	}()
	ectx, abandon := context.WithCancel(ctx)
	defer abandon()
	// An abandoned stream may have a full window: unblock its writers.
	stopWrites := context.AfterFunc(ectx, func() { st.SetWriteDeadline(past) })
	agentproto.WriteJSON(st, agentproto.FrameStarted, agentproto.Started{PID: c.pid, ID: p.id})

	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		readStdin(st, c, abandon)
	}()
	emit := func(t agentproto.FrameType) func([]byte) {
		return func(b []byte) { agentproto.WriteFrame(st, t, b) } // fails only once abandoned
	}
	status := supervise(ectx, c, p, plan.timeout, nil, emit(agentproto.FrameStdout), emit(agentproto.FrameStderr))
	if stopWrites() {
		agentproto.WriteJSON(st, agentproto.FrameExit, status)
	}
	st.Close()
	c.close()
	st.SetReadDeadline(past) // end readStdin
	<-inDone
	return nil
}

// forkFailure turns a ForkExec error into an exit status, or nil when the
// error happened before the fork (pipes, PTY).
func forkFailure(argv0 string, err error) *agentproto.ExitStatus {
	var fe *forkErr
	if !errors.As(err, &fe) {
		return nil
	}
	return forkError(argv0, fe.err)
}

// readStdin copies the host's stdin frames to the process until the stream
// ends. A stream that ends or breaks the protocol abandons the process.
func readStdin(st io.Reader, c *child, abandon func()) {
	in := c.stdin
	for {
		f, err := agentproto.ReadFrame(st)
		if err != nil {
			abandon()
			return
		}
		switch f.Type {
		case agentproto.FrameStdin:
			if in != nil {
				in.Write(f.Payload) // fails when the process closed its stdin: drop
			}
		case agentproto.FrameStdinEOF:
			if in != nil && c.pty != nil {
				in.Write([]byte{4}) // ^D: EOF for a terminal in canonical mode
			} else if in != nil {
				in.Close()
			}
			in = nil
		default:
			abandon()
			return
		}
	}
}

// supervise waits for c to exit and for its output to be drained, killing
// its process group when ctx ends or on timeout. As soon as the process has
// been reaped, onExit (if not nil) gets its exit code and p.done is closed.
func supervise(ctx context.Context, c *child, p *proc, timeout time.Duration, onExit func(int), out, errOut func([]byte)) agentproto.ExitStatus {
	limitsBefore := readLimitCounters()
	drain := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { pump(c.stdout, drain, out) })
	if c.stderr != nil {
		wg.Go(func() { pump(c.stderr, drain, errOut) })
	}
	kill := func() { syscall.Kill(-c.pid, syscall.SIGKILL) }
	var timedOut atomic.Bool
	var timer *time.Timer
	if timeout > 0 {
		timer = time.AfterFunc(timeout, func() {
			timedOut.Store(true)
			kill()
		})
	}
	stopKill := context.AfterFunc(ctx, kill)
	ws := <-c.status
	if timer != nil {
		timer.Stop()
	}
	stopKill()
	status := explainLimits(exitStatus(ws), limitsBefore, readLimitCountersAfter(ws.ExitStatus() != 0 || ws.Signaled()))
	if timedOut.Load() {
		status = agentproto.ExitStatus{Code: 124, TimedOut: true, Error: fmt.Sprintf("timed out after %v", timeout)}
	}
	if onExit != nil {
		onExit(status.Code)
	}
	close(p.done)

	close(drain)
	deadline := time.Now().Add(drainIdle)
	c.stdout.SetReadDeadline(deadline)
	if c.stderr != nil {
		c.stderr.SetReadDeadline(deadline)
	}
	wg.Wait()
	return status
}

// pump copies f to emit until EOF; once drain is closed, see drainIdle.
func pump(f *os.File, drain <-chan struct{}, emit func([]byte)) {
	buf := make([]byte, agentproto.ChunkSize)
	var draining bool
	var drainStart time.Time
	var drained int
	for {
		if !draining {
			select {
			case <-drain:
				draining, drainStart = true, time.Now()
			default:
			}
		}
		if draining {
			if drained > drainMaxBytes || time.Since(drainStart) > drainMaxTime {
				return
			}
			f.SetReadDeadline(time.Now().Add(drainIdle))
		}
		n, err := f.Read(buf)
		if n > 0 {
			emit(buf[:n])
			if draining {
				drained += n
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !draining {
				// supervise sets the first deadline after closing drain.
				draining, drainStart = true, time.Now()
				continue
			}
			return // EOF, EIO from a PTY whose last holder closed it, idle
		}
	}
}

// close releases the agent's ends of the process's stdio.
func (c *child) close() {
	for _, f := range []*os.File{c.stdin, c.stdout, c.stderr, c.pty} {
		if f != nil {
			f.Close()
		}
	}
}
