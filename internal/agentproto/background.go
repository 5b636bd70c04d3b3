package agentproto

import (
	"context"
	"fmt"
	"syscall"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// BackgroundLogSize is how much of each output stream the agent keeps for
// a background process: the last BackgroundLogSize bytes.
const BackgroundLogSize = 1 << 20

// StartBackground starts a detached process whose output the agent keeps in
// bounded buffers (see BackgroundLogs). It outlives this session. Stdin is
// always /dev/null; req.Stdin must be false.
func (c *Client) StartBackground(ctx context.Context, req ExecRequest) (BackgroundInfo, error) {
	var info BackgroundInfo
	if req.Stdin {
		return info, fmt.Errorf("%w: background processes have no stdin", errdefs.ErrInvalidArgument)
	}
	if err := req.Validate(); err != nil {
		return info, err
	}
	err := c.callJSON(ctx, &Request{Op: OpBgStart, Exec: &req}, &info)
	return info, err
}

// ListBackground lists the background processes the agent knows, running
// or exited (the oldest exited ones are forgotten when the table is full).
func (c *Client) ListBackground(ctx context.Context) ([]BackgroundInfo, error) {
	var list []BackgroundInfo
	err := c.callJSON(ctx, &Request{Op: OpBgList}, &list)
	return list, err
}

// GetBackground describes one background process; an unknown id is
// errdefs.ErrNotFound.
func (c *Client) GetBackground(ctx context.Context, id string) (BackgroundInfo, error) {
	var info BackgroundInfo
	err := c.callJSON(ctx, &Request{Op: OpBgGet, ID: id}, &info)
	return info, err
}

// BackgroundLogs returns the retained output of a background process: at
// most the last BackgroundLogSize bytes of each stream.
func (c *Client) BackgroundLogs(ctx context.Context, id string) (stdout, stderr []byte, err error) {
	st, err := c.open(ctx, &Request{Op: OpBgLogs, ID: id})
	if err != nil {
		return nil, nil, err
	}
	defer st.close()
	for {
		f, err := st.read()
		if err != nil {
			return nil, nil, err
		}
		var dst *[]byte
		switch f.Type {
		case FrameResult:
			return stdout, stderr, nil
		case FrameStdout:
			dst = &stdout
		case FrameStderr:
			dst = &stderr
		default:
			return nil, nil, st.unexpected(f)
		}
		if len(*dst)+len(f.Payload) > BackgroundLogSize {
			return nil, nil, fmt.Errorf("agent %s: %w: more than %d bytes of log", st.op, ErrProtocol, BackgroundLogSize)
		}
		*dst = append(*dst, f.Payload...)
	}
}

// KillBackground sends sig (0 means SIGKILL) to a background process's
// process group. A process that has exited is errdefs.ErrFailedPrecondition.
func (c *Client) KillBackground(ctx context.Context, id string, sig syscall.Signal) error {
	if sig == 0 {
		sig = syscall.SIGKILL
	}
	_, err := c.call(ctx, &Request{Op: OpBgKill, ID: id, Signal: int(sig)})
	return err
}
