package sandbox

import (
	"io"
	"syscall"
	"time"
)

// ExecOptions is a validated exec request.
type ExecOptions struct {
	Argv    []string
	Env     []string
	Workdir string
	User    string
	TTY     bool
	Rows    uint16
	Cols    uint16
	Stdin   bool
	Timeout time.Duration
}

// Process is a running exec. Its output readers end at EOF after the last
// byte; Wait returns after the exit. The caller drains Stdout and Stderr
// concurrently with Wait and calls Close when done.
type Process interface {
	PID() int
	Stdin() io.WriteCloser
	Stdout() io.Reader
	Stderr() io.Reader
	Resize(rows, cols uint16) error
	Signal(sig syscall.Signal) error
	Wait() (ExitStatus, error)
	Close() error
}

// ExitStatus is how a process ended.
type ExitStatus struct {
	Code     int
	Signal   int
	TimedOut bool
	// Error explains a code the agent chose (127, 126, 124).
	Error string
}

// Validate checks o with the guest agent's own rules (see
// agentproto.ExecRequest.Validate): the one exec check, shared by the HTTP
// API, MCP and the manager. Errors wrap errdefs.ErrInvalidArgument.
func (o ExecOptions) Validate() error {
	r := toAgentExec(o)
	return r.Validate()
}
