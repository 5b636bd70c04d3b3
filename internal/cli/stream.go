package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// drainGrace is how long pump waits, after the exit message, for the last
// output to be copied out.
const drainGrace = 2 * time.Second

// exitSIGPIPE is the code of a command whose output reader went away, as a
// shell reports a process killed by SIGPIPE.
const exitSIGPIPE = 128 + int(syscall.SIGPIPE)

// localIO is the local side of a streaming exec.
type localIO struct {
	// stdin is forwarded to the process; nil sends EOF at once.
	stdin          io.Reader
	stdout, stderr io.Writer
	// tty: the process has a PTY. raw: put the local terminal (stdin)
	// into raw mode while the stream runs. sizeFd is a terminal whose size
	// the PTY follows (SIGWINCH), or -1.
	tty    bool
	raw    bool
	stdinF *os.File
	sizeFd int
}

// newLocalIO describes the command's stdio for a streaming exec.
// stdinMode is forwardStdin's answer; tty says the process gets a PTY.
func newLocalIO(cmd *cobra.Command, forward, tty bool) localIO {
	lio := localIO{stdout: cmd.OutOrStdout(), stderr: cmd.ErrOrStderr(), tty: tty, sizeFd: -1}
	if forward {
		lio.stdin = cmd.InOrStdin()
	}
	if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		lio.stdinF = f
		lio.raw = tty && forward
	}
	if tty {
		if f, ok := cmd.OutOrStdout().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			lio.sizeFd = int(f.Fd())
		} else if lio.stdinF != nil {
			lio.sizeFd = int(lio.stdinF.Fd())
		}
	}
	return lio
}

// size returns the local terminal's size, or 0, 0.
func (l localIO) size() (rows, cols uint16) {
	if l.sizeFd < 0 {
		return 0, 0
	}
	w, h, err := term.GetSize(l.sizeFd)
	if err != nil || w <= 0 || h <= 0 || w > 0xffff || h > 0xffff {
		return 0, 0
	}
	return uint16(h), uint16(w)
}

// forwardStdin decides whether the local stdin goes to the process: the
// -i flag when given (-i=false never forwards), otherwise yes when stdin is
// a pipe, a file or a socket and no when it is a terminal, /dev/null or
// closed.
func forwardStdin(cmd *cobra.Command, interactive bool) bool {
	if cmd.Flags().Changed("interactive") {
		return interactive
	}
	f, ok := cmd.InOrStdin().(*os.File)
	if !ok {
		return cmd.InOrStdin() != nil
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	m := fi.Mode()
	return m.IsRegular() || m&os.ModeNamedPipe != 0 || m&os.ModeSocket != 0
}

// pump connects a started stream to the local side until the process exits
// (or the stream fails) and returns the exit message. The terminal is
// restored on every path.
func pump(s *client.Stream, lio localIO) (api.StreamControl, error) {
	done := make(chan struct{})
	defer close(done)

	if lio.raw {
		fd := int(lio.stdinF.Fd())
		if old, err := term.MakeRaw(fd); err == nil {
			defer term.Restore(fd, old)
		}
	}
	if lio.tty && lio.sizeFd >= 0 {
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for {
				select {
				case <-winch:
					if rows, cols := lio.size(); rows > 0 {
						s.Resize(rows, cols)
					}
				case <-done:
					return
				}
			}
		}()
	}

	// Stdin: copied until EOF, then the process sees EOF. The goroutine
	// may outlive pump while blocked reading a terminal; it then writes to
	// a closed stream and ends on the next read.
	go func() {
		if lio.stdin != nil {
			io.Copy(s.Stdin(), lio.stdin)
		}
		s.Stdin().Close()
	}()

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		writeErr error
	)
	copyOut := func(dst io.Writer, src io.Reader) {
		defer wg.Done()
		if src == nil {
			return
		}
		if _, err := io.Copy(dst, src); err != nil {
			var we *writeError
			if errors.As(err, &we) {
				// Nobody reads our output any more: stop the process,
				// as a shell pipeline would with SIGPIPE.
				mu.Lock()
				if writeErr == nil {
					writeErr = we.err
				}
				mu.Unlock()
				s.Close()
			}
			io.Copy(io.Discard, src)
		}
	}
	wg.Add(2)
	go copyOut(&errWriter{lio.stdout}, s.Stdout())
	go copyOut(&errWriter{lio.stderr}, s.Stderr())

	exit, err := s.Wait()
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainGrace):
	}
	mu.Lock()
	defer mu.Unlock()
	if writeErr != nil {
		if errors.Is(writeErr, syscall.EPIPE) {
			return api.StreamControl{}, &ExitError{Code: exitSIGPIPE}
		}
		return api.StreamControl{}, fmt.Errorf("writing the output: %w", writeErr)
	}
	return exit, streamLost(err)
}

// writeError marks an error of the local side of a copy.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

type errWriter struct{ w io.Writer }

func (w *errWriter) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		return n, &writeError{err}
	}
	return n, nil
}

// relay handles SIGINT, SIGTERM and SIGHUP while a command streams: the
// first is forwarded to the process (or, before it runs, remembered and
// forwarded when it starts); the second calls abandon and closes the
// stream. Create it with newRelay and stop it with stop.
type relay struct {
	ch      chan os.Signal
	done    chan struct{}
	abandon func()

	// mu guards the fields below.
	mu     sync.Mutex
	first  syscall.Signal
	count  int
	sent   bool
	stream *client.Stream
}

func newRelay(abandon func()) *relay {
	r := &relay{ch: make(chan os.Signal, 4), done: make(chan struct{}), abandon: abandon}
	signal.Notify(r.ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go r.loop()
	return r
}

func (r *relay) loop() {
	for {
		select {
		case sig := <-r.ch:
			if s, ok := sig.(syscall.Signal); ok {
				r.handle(s)
			}
		case <-r.done:
			return
		}
	}
}

func (r *relay) handle(sig syscall.Signal) {
	r.mu.Lock()
	r.count++
	n, s := r.count, r.stream
	if n == 1 {
		r.first = sig
		r.sent = s != nil
	}
	r.mu.Unlock()
	switch {
	case n == 1 && s != nil:
		s.Signal(int(sig))
	case n == 2:
		r.abandon()
		if s != nil {
			s.Close()
		}
	}
}

// attach gives the relay the started stream, forwarding a signal that
// arrived before it. It returns how many signals arrived so far.
func (r *relay) attach(s *client.Stream) int {
	r.mu.Lock()
	r.stream = s
	n, sig, pending := r.count, r.first, r.count > 0 && !r.sent
	r.sent = r.sent || pending
	r.mu.Unlock()
	if pending {
		s.Signal(int(sig))
	}
	if n >= 2 {
		s.Close()
	}
	return n
}

// interrupted returns the first signal received, or 0.
func (r *relay) interrupted() syscall.Signal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

// stop stops catching signals. Idempotent.
func (r *relay) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
	default:
		signal.Stop(r.ch)
		close(r.done)
	}
}

// exitMessage prints what the exit message says about an exit code the
// sandbox chose (127 not found, 126 not executable, 124 timeout).
func exitMessage(w io.Writer, exit api.StreamControl) {
	switch {
	case exit.Message != "":
		fmt.Fprintf(w, "agentkernel: %s\n", oneLine(exit.Message))
	case exit.TimedOut:
		fmt.Fprintln(w, "agentkernel: the command timed out and was killed")
	}
}

// streamLost turns a stream that ended without its exit message (the
// daemon was killed or restarted mid-command; the WebSocket library then
// says "failed to read frame header: EOF") into client.ErrDaemonLost,
// which Execute explains naming the command.
func streamLost(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, client.ErrDaemonLost) {
		return err
	}
	msg := err.Error()
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(msg, "frame header") ||
		strings.Contains(msg, "connection reset") || strings.Contains(msg, "StatusAbnormalClosure") {
		return fmt.Errorf("%w before the command finished", client.ErrDaemonLost)
	}
	return err
}
