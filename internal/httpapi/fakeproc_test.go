package httpapi

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// fakeProc is a scripted process. Its script runs in a goroutine that
// writes to pipes the handler drains.
type fakeProc struct {
	pid    int
	opts   sandbox.ExecOptions
	gate   <-chan struct{}
	stdinR *io.PipeReader
	stdinW *io.PipeWriter
	outR   *io.PipeReader
	outW   *io.PipeWriter
	errR   *io.PipeReader
	errW   *io.PipeWriter

	resizes chan [2]uint16
	signals chan syscall.Signal
	killed  chan struct{}
	done    chan struct{}
	status  sandbox.ExitStatus // written before done closes

	killOnce, closeOnce sync.Once
}

func newFakeProc(pid int, opts sandbox.ExecOptions, gate <-chan struct{}) *fakeProc {
	p := &fakeProc{pid: pid, opts: opts, gate: gate,
		resizes: make(chan [2]uint16, 16), signals: make(chan syscall.Signal, 16),
		killed: make(chan struct{}), done: make(chan struct{})}
	p.stdinR, p.stdinW = io.Pipe()
	p.outR, p.outW = io.Pipe()
	p.errR, p.errW = io.Pipe()
	go func() {
		st := p.script()
		p.outW.Close()
		p.errW.Close()
		p.stdinR.Close()
		p.status = st
		close(p.done)
	}()
	return p
}

// script runs argv[0]:
//
//	echo ARGS…        ARGS joined by spaces and "\n" on stdout
//	stderr TEXT       TEXT on stderr
//	both              "out\n" on stdout, "err\n" on stderr
//	exit N            exit code N
//	cat               copies stdin to stdout
//	env               the environment, workdir and user, one per line
//	gate              "first\n", then waits for the fake's gate, then "second\n"
//	flood N           N bytes of 'x' on stdout
//	sleep             waits until killed
//	tty               "tty=… rows=… cols=…\n", then reports resizes; a signal ends it with 128+N
//	utf8              "é" split across two writes
//	(anything else)   exit 127, "command not found"
func (p *fakeProc) script() sandbox.ExitStatus {
	argv := p.opts.Argv
	out := func(w io.Writer, s string) bool { _, err := io.WriteString(w, s); return err == nil }
	switch argv[0] {
	case "echo":
		out(p.outW, strings.Join(argv[1:], " ")+"\n")
	case "stderr":
		out(p.errW, strings.Join(argv[1:], " "))
	case "both":
		out(p.outW, "out\n")
		out(p.errW, "err\n")
	case "exit":
		n, _ := strconv.Atoi(argv[len(argv)-1])
		return sandbox.ExitStatus{Code: n}
	case "cat":
		if _, err := io.Copy(p.outW, p.stdinR); err != nil {
			return sandbox.ExitStatus{Code: 1}
		}
	case "env":
		out(p.outW, strings.Join(p.opts.Env, ",")+"\n"+p.opts.Workdir+"\n"+p.opts.User+"\n"+p.opts.Timeout.String()+"\n")
	case "gate":
		out(p.outW, "first\n")
		select {
		case <-p.gate:
		case <-p.killed:
			return sandbox.ExitStatus{Signal: int(syscall.SIGKILL)}
		}
		out(p.outW, "second\n")
	case "flood":
		n, _ := strconv.Atoi(argv[1])
		chunk := strings.Repeat("x", 64<<10)
		for n > 0 && !p.wasKilled() {
			k := min(n, len(chunk))
			if !out(p.outW, chunk[:k]) {
				break
			}
			n -= k
		}
	case "sleep":
		<-p.killed
		return sandbox.ExitStatus{Signal: int(syscall.SIGKILL)}
	case "tty":
		out(p.outW, fmt.Sprintf("tty=%v rows=%d cols=%d\n", p.opts.TTY, p.opts.Rows, p.opts.Cols))
		for {
			select {
			case rc := <-p.resizes:
				out(p.outW, fmt.Sprintf("resize %d %d\n", rc[0], rc[1]))
			case sig := <-p.signals:
				out(p.outW, fmt.Sprintf("signal %d\n", sig))
				return sandbox.ExitStatus{Signal: int(sig)}
			case <-p.killed:
				return sandbox.ExitStatus{Signal: int(syscall.SIGKILL)}
			}
		}
	case "utf8":
		out(p.outW, "a\xc3")
		time.Sleep(20 * time.Millisecond)
		out(p.outW, "\xa9b")
	default:
		return sandbox.ExitStatus{Code: 127, Error: "command not found: " + argv[0]}
	}
	select {
	case <-p.killed:
		return sandbox.ExitStatus{Signal: int(syscall.SIGKILL)}
	default:
	}
	return sandbox.ExitStatus{}
}

func (p *fakeProc) PID() int { return p.pid }

func (p *fakeProc) Stdin() io.WriteCloser {
	if !p.opts.Stdin {
		return nil
	}
	return p.stdinW
}

func (p *fakeProc) Stdout() io.Reader { return p.outR }
func (p *fakeProc) Stderr() io.Reader { return p.errR }

func (p *fakeProc) Resize(rows, cols uint16) error {
	select {
	case p.resizes <- [2]uint16{rows, cols}:
		return nil
	default:
		return fmt.Errorf("resize queue full: %w", errdefs.ErrUnavailable)
	}
}

func (p *fakeProc) Signal(sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		p.kill()
		return nil
	}
	select {
	case p.signals <- sig:
		return nil
	default:
		return fmt.Errorf("signal queue full: %w", errdefs.ErrUnavailable)
	}
}

func (p *fakeProc) kill() {
	p.killOnce.Do(func() {
		close(p.killed)
		p.stdinR.CloseWithError(io.ErrClosedPipe)
	})
}

func (p *fakeProc) wasKilled() bool {
	select {
	case <-p.killed:
		return true
	default:
		return false
	}
}

func (p *fakeProc) Wait() (sandbox.ExitStatus, error) {
	<-p.done
	return p.status, nil
}

// Close kills the script and ends the output pipes.
func (p *fakeProc) Close() error {
	p.closeOnce.Do(func() {
		p.kill()
		p.stdinW.Close()
		p.outR.Close()
		p.errR.Close()
		<-p.done
	})
	return nil
}
