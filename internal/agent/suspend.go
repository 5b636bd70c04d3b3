package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Suspending the host listener, for memory snapshots on gVisor.
//
// gVisor cannot checkpoint a socket bound on the host (runsc
// --host-uds=create makes the agent's unix: listener one; `runsc
// checkpoint` fails with "Cannot save endpoint with bound host socket"),
// nor the host connections accepted on it. So before a checkpoint the
// host side asks the agent to suspend: it closes its listener and every
// session served on it (their exec'd processes end, as when a host goes
// away; background processes belong to the Server and go on), and
// removes the socket file. After the checkpoint, in the original sandbox
// and in every sandbox restored from it, the host asks it to listen
// again. The host asks with `runsc exec ID agentkernel-agent --control
// suspend|listen`, which reaches this Server over ControlSocket, a
// Sentry-internal abstract Unix socket: it is never a host file, so it
// does not stop the checkpoint either.
//
// Only uid 0 of the sandbox may ask (SO_PEERCRED); root in the sandbox
// could stop the agent anyway.

// ControlSocket is the abstract Unix socket (Linux's leading NUL) on which
// an agent serving unix: takes suspend and listen requests.
const ControlSocket = "@agentkernel-agent-control"

// Control requests and the answer to a done one.
const (
	ControlSuspend = "suspend"
	ControlListen  = "listen"
	controlOK      = "ok"
)

// controlSocket is the name served and dialled: ControlSocket, but for
// tests, which share the host's abstract namespace.
var controlSocket = ControlSocket

// controlTimeout bounds one control request.
const controlTimeout = 30 * time.Second

// suspendable is the listening half of ServeAddr's unix: scheme: the
// listener can be closed (suspend) and reopened (listen) on request.
type suspendable struct {
	s    *Server
	path string

	mu     sync.Mutex
	cancel context.CancelFunc // ends the current Serve; nil while suspended
	done   chan struct{}      // closed when the current Serve returned
	// suspended is set by suspend and cleared by listen, which closes
	// wake, the channel the serve loop waits on meanwhile.
	suspended bool
	wake      chan struct{}
}

// serveUnix serves on a Unix socket at path, with the control socket.
func (s *Server) serveUnix(ctx context.Context, path string) error {
	sp := &suspendable{s: s, path: path}
	cl, err := net.Listen("unix", controlSocket)
	if err != nil {
		// Without it the sandbox still works; only memory snapshots do not.
		s.log.Warn("no control socket; memory snapshots will fail", "err", err)
	} else {
		go sp.serveControl(ctx, cl)
	}
	for {
		l, err := listenUnix(path)
		if err != nil {
			return err
		}
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		sp.mu.Lock()
		sp.cancel, sp.done = cancel, done
		sp.mu.Unlock()
		err = s.Serve(lctx, l)
		sp.mu.Lock()
		if !sp.suspended {
			sp.cancel = cancel // not nil: it ended on its own
		}
		sp.mu.Unlock()
		cancel()
		close(done)
		if ctx.Err() != nil || s.ctx.Err() != nil {
			return err
		}
		sp.mu.Lock()
		wasSuspended, wake := sp.cancel == nil, sp.wake
		sp.mu.Unlock()
		if !wasSuspended {
			return err // Serve ended on its own
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil
		case <-s.ctx.Done():
			return nil
		}
	}
}

// suspend closes the listener and every session on it and removes the
// socket file; it returns once they are gone. Idempotent.
func (sp *suspendable) suspend() error {
	sp.mu.Lock()
	if sp.suspended {
		sp.mu.Unlock()
		return nil
	}
	cancel, done := sp.cancel, sp.done
	if cancel == nil {
		sp.mu.Unlock()
		return fmt.Errorf("%w: not listening", errdefs.ErrFailedPrecondition)
	}
	sp.suspended, sp.wake, sp.cancel = true, make(chan struct{}), nil
	sp.mu.Unlock()
	cancel()
	select {
	case <-done:
	case <-time.After(controlTimeout):
		return fmt.Errorf("%w: sessions did not end", errdefs.ErrUnavailable)
	}
	if err := unix.Unlink(sp.path); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	sp.s.log.Info("suspended the host listener")
	return nil
}

// listen undoes suspend and returns once the socket accepts again.
func (sp *suspendable) listen() error {
	sp.mu.Lock()
	if !sp.suspended {
		sp.mu.Unlock()
		return nil
	}
	sp.suspended = false
	close(sp.wake)
	sp.mu.Unlock()
	deadline := time.Now().Add(controlTimeout)
	for time.Now().Before(deadline) {
		sp.mu.Lock()
		up := sp.cancel != nil
		sp.mu.Unlock()
		if up {
			sp.s.log.Info("listening on the host socket again")
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%w: the listener did not come back", errdefs.ErrUnavailable)
}

// serveControl answers control requests, one line each, until ctx ends.
func (sp *suspendable) serveControl(ctx context.Context, l net.Listener) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go sp.handleControl(c)
	}
}

func (sp *suspendable) handleControl(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(controlTimeout + 5*time.Second))
	if err := peerIsRoot(c); err != nil {
		fmt.Fprintf(c, "%v\n", err)
		return
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	switch strings.TrimSpace(line) {
	case ControlSuspend:
		err = sp.suspend()
	case ControlListen:
		err = sp.listen()
	default:
		err = fmt.Errorf("%w: unknown control request %q", errdefs.ErrInvalidArgument, strings.TrimSpace(line))
	}
	if err != nil {
		fmt.Fprintf(c, "%v\n", err)
		return
	}
	fmt.Fprintln(c, controlOK)
}

func peerIsRoot(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("%w: not a unix connection", errdefs.ErrPermissionDenied)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 {
		return fmt.Errorf("%w: only root may control the agent", errdefs.ErrPermissionDenied)
	}
	return nil
}

// Control sends request (ControlSuspend or ControlListen) to the agent
// serving in this sandbox and waits for it to be done.
func Control(ctx context.Context, request string) error {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, controlTimeout+10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "unix", controlSocket)
	if err != nil {
		return fmt.Errorf("agent control: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintln(c, request); err != nil {
		return fmt.Errorf("agent control: %w", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("agent control: no answer: %w", err)
	}
	if line = strings.TrimSpace(line); line != controlOK {
		return fmt.Errorf("agent control %s: %s", request, line)
	}
	return nil
}
