package container

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// stopWait bounds how long Stop waits for the killed init to be gone.
const stopWait = 5 * time.Second

// ErrExitUnknown is the ExitError of a sandbox whose init was not a child of
// this process (the supervisor did not set PR_SET_CHILD_SUBREAPER), so its
// exit status could not be collected.
var ErrExitUnknown = fmt.Errorf("%w: sandbox init exited; its status is unknown (not a child of this process)", errdefs.ErrUnavailable)

// instance is one running container, created by Start and owned by the
// supervisor that called it.
//
// Exit is detected through a pidfd on the container's init (pidfd_open,
// Linux 5.3): the pidfd is registered with Go's network poller, which wakes
// the watch goroutine when the process exits, so no thread blocks and no
// pid can be confused with a reused one. When the init is our child (the
// supervisor is a child subreaper and runc has exited) the watcher also
// reaps it with waitid(P_PIDFD) and reports its status; otherwise ExitError
// is ErrExitUnknown.
type instance struct {
	b    *Backend
	spec backend.Spec
	l    layout
	pid  int

	// pidfd belongs to the watch goroutine, which closes it when done.
	pidfd   *os.File
	exited  chan struct{}
	exitErr error // written by the watcher before it closes exited

	// mu serialises Stop, pause, resume and checkpoint.
	mu      sync.Mutex
	stopped bool
	// After a gvisor Checkpoint, until Resume: the runtime is paused and
	// the agent's host listener suspended (see checkpoint.go).
	runtimePaused  bool
	agentSuspended bool
}

var _ backend.Instance = (*instance)(nil)

func newInstance(b *Backend, s *backend.Spec, l layout, pid int) (*instance, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("%w: watching sandbox init %d: %v", errdefs.ErrFailedPrecondition, pid, err)
	}
	in := &instance{b: b, spec: *s, l: l, pid: pid, pidfd: os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid)), exited: make(chan struct{})}
	go in.watch()
	return in, nil
}

// watch waits for the init to exit, records why, and closes exited.
func (in *instance) watch() {
	defer close(in.exited)
	defer in.pidfd.Close()
	rc, err := in.pidfd.SyscallConn()
	if err != nil {
		in.exitErr = err
		return
	}
	var status error
	err = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
		switch {
		case err == nil:
			pid, code, st := siginfoChild(&info)
			if pid == 0 {
				return false // still running
			}
			status = exitStatus(code, st)
			return true
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			return false
		case errors.Is(err, unix.ECHILD):
			// Not our child: the pidfd is readable once it exits.
			p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if n, _ := unix.Poll(p, 0); n > 0 {
				status = ErrExitUnknown
				return true
			}
			return false
		default:
			status = fmt.Errorf("waiting for sandbox init: %w", err)
			return true
		}
	})
	if err != nil {
		// The pidfd was closed under us (closeWatch): the
		// instance is being abandoned after a failed Start.
		status = fmt.Errorf("stopped watching sandbox init: %w", err)
	}
	in.exitErr = status
}

// closeWatch stops the watcher (after a failed Start, whose teardown killed
// the init anyway).
func (in *instance) closeWatch() {
	in.pidfd.Close()
	<-in.exited
}

// siginfoChild decodes the SIGCHLD fields of a siginfo_t: si_pid and
// si_status follow signo, errno, code (and padding on 64-bit platforms).
func siginfoChild(info *unix.Siginfo) (pid int, code int, status int) {
	b := (*[unsafe.Sizeof(unix.Siginfo{})]byte)(unsafe.Pointer(info))
	off := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		off = 16
	}
	pid = int(*(*int32)(unsafe.Pointer(&b[off])))
	status = int(*(*int32)(unsafe.Pointer(&b[off+8])))
	return pid, int(info.Code), status
}

// si_code values for SIGCHLD.
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

func exitStatus(code, status int) error {
	switch code {
	case cldExited:
		if status == 0 {
			return nil
		}
		return fmt.Errorf("sandbox init exited with status %d", status)
	case cldKilled, cldDumped:
		return fmt.Errorf("sandbox init killed by signal %v", unix.Signal(status))
	default:
		return fmt.Errorf("sandbox init ended (code %d, status %d)", code, status)
	}
}

// Exited is closed when the container's init has exited.
func (in *instance) Exited() <-chan struct{} { return in.exited }

// ExitError says why the init exited; valid once Exited is closed.
func (in *instance) ExitError() error {
	select {
	case <-in.exited:
		return in.exitErr
	default:
		return nil
	}
}

// DialAgent connects to the agent's socket. The socket lives in a directory
// the sandbox can write to, so it is opened with O_PATH|O_NOFOLLOW, checked
// to be a socket, and dialled through /proc/self/fd: a symlink planted by the
// sandbox cannot redirect the supervisor to another socket on the host, and
// the path length limit of sockaddr_un does not apply.
func (in *instance) DialAgent(ctx context.Context) (net.Conn, error) {
	select {
	case <-in.exited:
		return nil, fmt.Errorf("%w: sandbox %s has exited", errdefs.ErrUnavailable, in.spec.ID)
	default:
	}
	return dialAgentSocket(ctx, filepath.Join(in.l.agentRun, oci.AgentSocketName))
}

func dialAgentSocket(ctx context.Context, p string) (net.Conn, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: agent socket: %v", errdefs.ErrUnavailable, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%w: %s is not a socket", errdefs.ErrPermissionDenied, p)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd))
	if err != nil {
		return nil, fmt.Errorf("%w: dialling the agent: %v", errdefs.ErrUnavailable, err)
	}
	return c, nil
}

// waitAgent polls until the agent accepts a connection, the init exits, or
// the timeout or ctx ends.
func (in *instance) waitAgent(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sock := filepath.Join(in.l.agentRun, oci.AgentSocketName)
	// A short fixed interval: the agent is usually up within tens of
	// milliseconds, and a backoff would add its last step to every start.
	const delay = 2 * time.Millisecond
	for {
		if c, err := dialAgentSocket(ctx, sock); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-in.exited:
			return fmt.Errorf("%w: sandbox %s exited before its agent listened (%v): %s",
				errdefs.ErrFailedPrecondition, in.spec.ID, in.exitErr, tailFrom(in.l.console, 0, 2<<10))
		case <-ctx.Done():
			return fmt.Errorf("%w: sandbox %s: agent not listening on %s: %v",
				errdefs.ErrDeadlineExceeded, in.spec.ID, sock, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// Stop kills the container, waits for its init to exit, and releases its
// runtime state, rootfs mount and cgroup. It is idempotent: once it has
// succeeded, later calls return nil; after a failure a later call retries.
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
		// The kill may race the init's own exit (the caller asked the
		// agent to shut down first): runsc then finds its control socket
		// closed. What matters is that the init is gone, so a failed
		// kill counts only if the init is still there after the wait.
		killErr := in.b.runtime().kill(ctx, in.spec.ID, "KILL")
		wctx, cancel := context.WithTimeout(ctx, stopWait)
		select {
		case <-in.exited:
		case <-wctx.Done():
			if killErr != nil {
				errs = append(errs, killErr)
			}
			errs = append(errs, fmt.Errorf("%w: sandbox init %d still running after SIGKILL", errdefs.ErrDeadlineExceeded, in.pid))
		}
		cancel()
	}
	if err := in.b.teardown(ctx, &in.spec); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	in.stopped = true
	return nil
}
