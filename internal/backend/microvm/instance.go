package microvm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Named timeouts of an instance.
const (
	// quitWait is how long Stop waits for QEMU after QMP "quit" before it
	// kills it; killWait after SIGKILL.
	quitWait = 3 * time.Second
	killWait = 5 * time.Second
	// helloAttempt bounds one readiness check of the agent.
	helloAttempt = 10 * time.Second
)

// instance is one running microVM, created by Start and owned by the
// supervisor. It owns the QEMU process (its child), the QMP connection,
// the outer yamux session on the agent's virtio-serial port and the
// console copier, and these goroutines: wait (reaps QEMU, then closes
// exited), events (reads QMP events until QMP closes), refuseStreams,
// copyConsole and yamux's own. QEMU's exit ends all of them; Stop makes
// QEMU exit.
//
// DialAgent opens a new stream of the outer session; the guest hands it to
// the agent as a fresh connection (see internal/guestinit). So the
// supervisor may dial any number of times, concurrently, as on the
// container backend, over the port's single byte stream.
type instance struct {
	b     *Backend
	spec  backend.Spec
	l     layout
	accel AccelInfo
	cmd   *exec.Cmd
	qmp   *qmp
	sess  *yamux.Session
	qlog  io.Closer // QEMU's output, closed once QEMU is reaped
	// consoleDone is closed when the console copier has written the last
	// of the guest's console (QEMU closed its end).
	consoleDone chan struct{}

	exited   chan struct{}
	exitErr  error         // written by wait before exited closes
	portOpen chan struct{} // closed when the guest opens the agent port

	// evMu guards what the events goroutine observed.
	evMu           sync.Mutex
	shutdownReason string
	panicked       bool
	portOnce       sync.Once

	// mu serialises Stop.
	mu      sync.Mutex
	stopped bool
}

var _ backend.Instance = (*instance)(nil)

// watch starts the goroutines that follow QEMU and its events.
func (in *instance) watch() {
	go func() {
		err := in.cmd.Wait()
		in.qlog.Close()
		select {
		case <-in.consoleDone:
		case <-time.After(time.Second):
		}
		in.exitErr = in.exitReason(err)
		close(in.exited)
		in.sess.Close()
	}()
	go in.events()
	go in.refuseStreams()
}

// refuseStreams ends the outer session if the guest opens a stream: the
// guest never does, and streams nobody reads would each hold up to a
// window of host memory.
func (in *instance) refuseStreams() {
	st, err := in.sess.AcceptStream()
	if err != nil {
		return
	}
	st.Close()
	in.b.log.Warn("the guest opened a stream on the agent port; closing the port", "id", in.spec.ID)
	in.sess.Close()
}

func (in *instance) events() {
	for ev := range in.qmp.events {
		switch ev.Event {
		case "VSERPORT_CHANGE":
			var d struct {
				ID   string `json:"id"`
				Open bool   `json:"open"`
			}
			if json.Unmarshal(ev.Data, &d) == nil && d.ID == "agentport" && d.Open {
				in.portOnce.Do(func() { close(in.portOpen) })
			}
		case "SHUTDOWN":
			var d struct {
				Reason string `json:"reason"`
			}
			json.Unmarshal(ev.Data, &d)
			in.evMu.Lock()
			in.shutdownReason = d.Reason
			in.evMu.Unlock()
		case "GUEST_PANICKED":
			in.evMu.Lock()
			in.panicked = true
			in.evMu.Unlock()
		}
	}
}

// exitReason says why QEMU ended: nil for a guest that powered off, else
// an error with the console's (or QEMU's) last lines.
func (in *instance) exitReason(waitErr error) error {
	// Let the events goroutine record a SHUTDOWN that raced the exit.
	time.Sleep(20 * time.Millisecond)
	in.evMu.Lock()
	reason, panicked := in.shutdownReason, in.panicked
	in.evMu.Unlock()
	console := tailFile(in.l.console, 2<<10)
	switch {
	case waitErr != nil && !isExitStatus(waitErr, 0):
		msg := "qemu ended (" + describeExit(in.cmd.ProcessState) + ")"
		if q := tailFile(in.l.qemuLog, 1<<10); q != "" {
			msg += ": " + q
		}
		return fmt.Errorf("%s%s", msg, consoleNote(console))
	case panicked || bytes.Contains([]byte(console), []byte("Kernel panic")):
		return fmt.Errorf("the guest kernel panicked%s", consoleNote(console))
	case reason == "guest-shutdown":
		return nil
	case reason == "guest-reset":
		return fmt.Errorf("the guest rebooted (a microVM ends on reboot)%s", consoleNote(console))
	case reason == "":
		return fmt.Errorf("qemu exited without a shutdown event%s", consoleNote(console))
	default:
		return fmt.Errorf("the VM shut down (%s)", reason)
	}
}

func isExitStatus(err error, code int) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == code
}

func consoleNote(tail string) string {
	if tail == "" {
		return ""
	}
	return "; console:\n" + tail
}

// Exited is closed when QEMU has exited.
func (in *instance) Exited() <-chan struct{} { return in.exited }

// ExitError says why; valid once Exited is closed.
func (in *instance) ExitError() error {
	select {
	case <-in.exited:
		return in.exitErr
	default:
		return nil
	}
}

// Accel is the accelerator the VM runs on.
func (in *instance) Accel() string { return in.accel.Accel }

// DialAgent opens a new stream to the agent over the port's session.
func (in *instance) DialAgent(ctx context.Context) (net.Conn, error) {
	select {
	case <-in.exited:
		return nil, fmt.Errorf("%w: sandbox %s has exited", errdefs.ErrUnavailable, in.spec.ID)
	default:
	}
	type opened struct {
		c   net.Conn
		err error
	}
	// OpenStream blocks while the guest leaves too many opens unanswered.
	ch := make(chan opened, 1)
	go func() {
		c, err := in.sess.OpenStream()
		ch <- opened{c, err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, fmt.Errorf("%w: agent port of sandbox %s: %v", errdefs.ErrUnavailable, in.spec.ID, o.err)
		}
		return o.c, nil
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.err == nil {
				o.c.Close()
			}
		}()
		return nil, fmt.Errorf("%w: agent port of sandbox %s: %v", errdefs.ErrUnavailable, in.spec.ID, ctx.Err())
	}
}

// waitAgent waits for the guest to open its port and the agent to answer
// a hello, for QEMU to exit, or for the timeout.
func (in *instance) waitAgent(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func() error {
		if in.exitErr != nil {
			return fmt.Errorf("%w: sandbox %s: the VM ended before its agent answered: %v",
				errdefs.ErrFailedPrecondition, in.spec.ID, in.exitErr)
		}
		return fmt.Errorf("%w: sandbox %s: the VM powered off before its agent answered%s",
			errdefs.ErrFailedPrecondition, in.spec.ID, consoleNote(tailFile(in.l.console, 2<<10)))
	}
	select {
	case <-in.portOpen:
	case <-in.exited:
		return fail()
	case <-ctx.Done():
		return fmt.Errorf("%w: sandbox %s: the guest did not open its agent port within %v (accelerator %s)%s",
			errdefs.ErrDeadlineExceeded, in.spec.ID, timeout, in.accel.Accel, consoleNote(tailFile(in.l.console, 2<<10)))
	}
	for {
		err := in.hello()
		if err == nil {
			return nil
		}
		select {
		case <-in.exited:
			return fail()
		case <-ctx.Done():
			return fmt.Errorf("%w: sandbox %s: agent does not answer: %v%s",
				errdefs.ErrDeadlineExceeded, in.spec.ID, err, consoleNote(tailFile(in.l.console, 2<<10)))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (in *instance) hello() error {
	c, err := in.DialAgent(context.Background())
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		cl, err := agentproto.NewClient(c)
		if err == nil {
			cl.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-in.exited:
		c.Close()
		return <-done
	case <-time.After(helloAttempt):
		c.Close()
		return <-done
	}
}

// Stop ends the VM (QMP quit, then SIGKILL) and releases what the sandbox
// holds on the host, keeping its writable disk. The caller asked the agent
// to shut down first. Idempotent once it succeeded.
func (in *instance) Stop(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return nil
	}
	var errs []error
	select {
	case <-in.exited:
	default:
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		in.qmp.run(qctx, "quit", nil)
		cancel()
		select {
		case <-in.exited:
		case <-time.After(quitWait):
			in.cmd.Process.Kill()
			select {
			case <-in.exited:
			case <-time.After(killWait):
				errs = append(errs, fmt.Errorf("%w: qemu %d still running after SIGKILL", errdefs.ErrDeadlineExceeded, in.cmd.Process.Pid))
			}
		}
	}
	in.sess.Close()
	in.qmp.Close()
	if err := in.b.release(in.l); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	in.stopped = true
	return nil
}

// tailFile returns up to n bytes of the end of p, from a line start.
func tailFile(p string, n int64) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-n, 0)
	b := make([]byte, fi.Size()-off)
	nr, _ := f.ReadAt(b, off)
	b = b[:nr]
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(bytes.TrimSpace(bytes.ToValidUTF8(b, []byte("?"))))
}
