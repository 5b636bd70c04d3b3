package container

import (
	"context"
	"fmt"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

var _ backend.HostnameSetter = (*instance)(nil)

// SetHostname sets the host name of the running container from outside:
// a thread of ours joins the container's UTS namespace and calls
// sethostname(2). Root in the container cannot (the profiles drop
// CAP_SYS_ADMIN); we, root of the user namespace that owns it, may. The
// thread stays locked and so dies with its goroutine: it is never reused
// in the wrong namespace.
func (in *instance) SetHostname(ctx context.Context, name string) error {
	if !backend.HostnameRE.MatchString(name) {
		return fmt.Errorf("%w: hostname %q is not a valid host name label", errdefs.ErrInvalidArgument, name)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- setHostnameIn(in.pid, name)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func setHostnameIn(pid int, name string) error {
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/uts", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening the sandbox's UTS namespace: %v", errdefs.ErrFailedPrecondition, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWUTS); err != nil {
		return fmt.Errorf("%w: joining the sandbox's UTS namespace: %v", errdefs.ErrFailedPrecondition, err)
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("%w: setting the host name: %v", errdefs.ErrFailedPrecondition, err)
	}
	return nil
}
