package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// reopenDelay is how long ServeAddr waits before reopening a file: stream
// whose session ended (a virtio-serial port reads EOF while no host is
// connected).
const reopenDelay = 200 * time.Millisecond

// ServeAddr serves the Server on addr until ctx ends:
//
//   - unix:/path — listen on a Unix socket (mode 0600; a stale socket file
//     is replaced) and serve a session on every connection, so the host may
//     reconnect. The listener can be suspended for a checkpoint (see
//     ControlSocket).
//   - fd:N — an inherited file descriptor. A listening socket is served
//     like unix:; any other stream (one end of a socketpair) carries one
//     session, and ServeAddr returns when it ends.
//   - tcp:127.0.0.1:PORT — listen on a loopback TCP address (any other is
//     refused) and serve like unix:.
//     The kubernetes backend reaches it through the API server's
//     pods/portforward, which connects to the pod's own loopback.
//   - file:/dev/vport0p1 — open the file read-write and serve one session
//     over it; when the session ends (the host went away), reopen it and
//     serve the next one. A terminal is put in raw mode first.
func (s *Server) ServeAddr(ctx context.Context, addr string) error {
	scheme, rest, _ := strings.Cut(addr, ":")
	switch scheme {
	case "unix":
		if rest == "" {
			return fmt.Errorf("agent: %w: empty socket path", errdefs.ErrInvalidArgument)
		}
		return s.serveUnix(ctx, rest)
	case "tcp":
		// Only a loopback address: the agent's port must never be on a
		// network the sandbox's neighbours share.
		ap, err := netip.ParseAddrPort(rest)
		if err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("agent: %w: tcp listen address %q is not a loopback IP:PORT", errdefs.ErrInvalidArgument, rest)
		}
		l, err := net.Listen("tcp", rest)
		if err != nil {
			return fmt.Errorf("agent: listen: %w", err)
		}
		return s.Serve(ctx, l)
	case "fd":
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return fmt.Errorf("agent: %w: bad fd in %q", errdefs.ErrInvalidArgument, addr)
		}
		return s.serveFD(ctx, n)
	case "file":
		if rest == "" {
			return fmt.Errorf("agent: %w: empty path in %q", errdefs.ErrInvalidArgument, addr)
		}
		return s.serveFile(ctx, rest)
	}
	return fmt.Errorf("agent: %w: listen address %q is not unix:PATH, tcp:ADDR, fd:N or file:PATH", errdefs.ErrInvalidArgument, addr)
}

func listenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, fmt.Errorf("agent: %w: empty socket path", errdefs.ErrInvalidArgument)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("agent: %w: %s exists and is not a socket", errdefs.ErrAlreadyExists, path)
		}
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("agent: listen: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("agent: listen: %w", err)
	}
	return l, nil
}

func (s *Server) serveFD(ctx context.Context, n int) error {
	accepting, err := unix.GetsockoptInt(n, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	f := os.NewFile(uintptr(n), "fd:"+strconv.Itoa(n))
	if f == nil {
		return fmt.Errorf("agent: %w: fd %d is not open", errdefs.ErrInvalidArgument, n)
	}
	if err == nil && accepting == 1 {
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("agent: fd %d: %w", n, err)
		}
		return s.Serve(ctx, l)
	}
	if err == nil { // a connected socket: use net.Conn for deadlines and Close
		c, cerr := net.FileConn(f)
		f.Close()
		if cerr != nil {
			return fmt.Errorf("agent: fd %d: %w", n, cerr)
		}
		return s.ServeConn(ctx, c)
	}
	return s.ServeConn(ctx, f)
}

func (s *Server) serveFile(ctx context.Context, path string) error {
	for ctx.Err() == nil && s.ctx.Err() == nil {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.EBUSY) {
				s.log.Debug("cannot open agent port yet", "path", path, "err", err)
				sleep(ctx, time.Second)
				continue
			}
			return fmt.Errorf("agent: open %s: %w", path, err)
		}
		if term.IsTerminal(fd) {
			if _, err := term.MakeRaw(fd); err != nil {
				unix.Close(fd)
				return fmt.Errorf("agent: %s: raw mode: %w", path, err)
			}
		}
		// Non-blocking, so that Go's poller serves it and Close interrupts reads.
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return fmt.Errorf("agent: %s: %w", path, err)
		}
		if err := s.ServeConn(ctx, os.NewFile(uintptr(fd), path)); err != nil {
			return err
		}
		sleep(ctx, reopenDelay)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
