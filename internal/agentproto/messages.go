package agentproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Version is the protocol's major version. Peers with different versions
// do not talk to each other.
const Version = 1

// Ops name what a stream does; Request.Op carries one.
const (
	OpHello     = "hello"      // → Result(HelloInfo)
	OpPing      = "ping"       // → Result({})
	OpExec      = "exec"       // → Started, Stdout/Stderr…, Exit; host sends Stdin/StdinEOF
	OpSignal    = "signal"     // ID, Signal: signal an exec's process group → Result({})
	OpResize    = "resize"     // ID, Rows, Cols: resize an exec's PTY → Result({})
	OpBgStart   = "bg_start"   // Exec → Result(BackgroundInfo)
	OpBgList    = "bg_list"    // → Result([]BackgroundInfo)
	OpBgGet     = "bg_get"     // ID → Result(BackgroundInfo)
	OpBgLogs    = "bg_logs"    // ID → Stdout…, Stderr…, Result({})
	OpBgKill    = "bg_kill"    // ID, Signal → Result({})
	OpStat      = "stat"       // Path → Result(FileInfo)
	OpReadFile  = "read_file"  // Path, Max → Data…, DataEnd
	OpWriteFile = "write_file" // Path, Mode; host sends Data…, DataEnd → Result({})
	OpListDir   = "list_dir"   // Path → Data([]FileInfo)…, DataEnd
	OpRemove    = "remove"     // Path, Recursive → Result({})
	OpMkdir     = "mkdir"      // Path, Mode, Parents → Result({})
	OpTarOut    = "tar_out"    // Path → Result(FileInfo), Data…, DataEnd
	OpTarIn     = "tar_in"     // Path; host sends Data…, DataEnd → Result({})
	OpShutdown  = "shutdown"   // → Result({}), then the agent exits
	OpConfigure = "configure"  // Configure → Result({})
	OpDisk      = "disk"       // → Result(DiskStat)
	maxIDLength = 128
	maxUserLen  = 256
	// MaxArgs and MaxEnv bound an exec's argv and environment. They are
	// the one limit: the HTTP API, the CLI and MCP validate an exec
	// through ExecRequest.Validate (via sandbox.ExecOptions) before the
	// agent applies the same check.
	MaxArgs      = 4096
	MaxEnv       = 4096
	maxPathBytes = 4096
)

// Request is the payload of the first frame of every stream. Which fields
// matter depends on Op (see the Op constants).
type Request struct {
	Op        string       `json:"op"`
	Version   int          `json:"version,omitempty"`
	Exec      *ExecRequest `json:"exec,omitempty"`
	ID        string       `json:"id,omitempty"`
	Signal    int          `json:"signal,omitempty"`
	Rows      uint16       `json:"rows,omitempty"`
	Cols      uint16       `json:"cols,omitempty"`
	Path      string       `json:"path,omitempty"`
	Max       int64        `json:"max,omitempty"`
	Mode      uint32       `json:"mode,omitempty"`
	Recursive bool         `json:"recursive,omitempty"`
	Parents   bool         `json:"parents,omitempty"`
	Configure *Configure   `json:"configure,omitempty"`
}

// Configure changes the agent's defaults for the processes it starts from
// then on: a warm-pool sandbox learns its caller's settings at claim time
// this way. Env entries (KEY=VALUE) are set in the agent's environment,
// the base of every exec's; a non-empty Hostname is set with
// sethostname(2), which needs CAP_SYS_ADMIN in the sandbox's UTS
// namespace (a microVM's agent has it; a container's supervisor sets the
// name from the host instead).
type Configure struct {
	Env      []string `json:"env,omitempty"`
	Hostname string   `json:"hostname,omitempty"`
}

// Validate checks c's bounds and shapes.
func (c *Configure) Validate() error {
	if len(c.Env) > MaxEnv {
		return fmt.Errorf("%w: %d environment entries (at most %d)", errdefs.ErrInvalidArgument, len(c.Env), MaxEnv)
	}
	for _, kv := range c.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.ContainsRune(kv, 0) || strings.HasPrefix(k, "AGENTKERNEL_") {
			return fmt.Errorf("%w: environment entry %q is not KEY=VALUE", errdefs.ErrInvalidArgument, kv)
		}
	}
	if c.Hostname != "" && !hostnameRE.MatchString(c.Hostname) {
		return fmt.Errorf("%w: hostname %q is not a valid host name label", errdefs.ErrInvalidArgument, c.Hostname)
	}
	return nil
}

// hostnameRE is one DNS label (as backend.HostnameRE, which this package
// cannot import: the agent is built without the host's packages).
var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// ExecRequest describes a process to start in the sandbox.
type ExecRequest struct {
	Argv []string `json:"argv"`
	// Env is KEY=VALUE pairs applied over the agent's base environment.
	Env     []string `json:"env,omitempty"`
	Workdir string   `json:"workdir,omitempty"` // absolute; "" is "/"
	// User is "", a name, a uid, or uid:gid (names allowed on both sides),
	// resolved with the sandbox's /etc/passwd and /etc/group. "" keeps the
	// agent's own user.
	User string `json:"user,omitempty"`
	TTY  bool   `json:"tty,omitempty"`
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// Stdin false gives the process /dev/null as stdin.
	Stdin bool `json:"stdin,omitempty"`
	// Timeout 0 is none; on expiry the process group gets SIGKILL and the
	// exit status is Code 124 with TimedOut set.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// ExitStatus is how a process ended. Code is the exit code; a process
// killed by signal N has Code 128+N and Signal N. A process that could not
// be started has Code 127 (not found) or 126 (not executable, bad workdir,
// bad user) and Error says why.
type ExitStatus struct {
	Code     int    `json:"code"`
	Signal   int    `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Started is the payload of FrameStarted: the process's pid in the
// sandbox (0 when it could not be started) and the agent's id for it.
type Started struct {
	PID int    `json:"pid"`
	ID  string `json:"id"`
}

// HelloInfo is what the agent says about itself when a session starts.
type HelloInfo struct {
	Version      int    `json:"version"`
	AgentVersion string `json:"agent_version"`
	PID          int    `json:"pid"` // the agent's pid; 1 when it is init
	UID          int    `json:"uid"`
	Hostname     string `json:"hostname,omitempty"`
	Arch         string `json:"arch,omitempty"`
	Kernel       string `json:"kernel,omitempty"` // uname release
}

// DiskStat is the sandbox's writable disk as the agent sees it: the
// filesystem holding /tmp, which every backend puts on the sandbox's disk
// (with its upper layer or /root and /home).
type DiskStat struct {
	Bytes     uint64 `json:"bytes"`      // its size
	Avail     uint64 `json:"avail"`      // bytes a process may still write
	Files     uint64 `json:"files"`      // inodes
	FilesFree uint64 `json:"files_free"` // free inodes
	// ReadOnly: the filesystem was made read-only, as ext4 does when a
	// write to its device failed (the sparse image's host filesystem
	// filled up under it).
	ReadOnly bool `json:"read_only,omitempty"`
}

// DiskReadOnly is the exit status and error text for a disk that ext4 made
// read-only under the sandbox.
const DiskReadOnly = "the sandbox's disk was made read-only after a write to it failed " +
	"(the host's disk holding it is likely full: see the host's kernel log); " +
	"free space on the host, then stop and start the sandbox to repair it"

// DiskFullBytes is the free space below which a disk counts as full: a
// write of any size may then fail with ENOSPC.
const DiskFullBytes = 1 << 20

// Full reports whether d has (nearly) no room left for data or inodes.
func (d DiskStat) Full() bool {
	return d.Bytes > 0 && (d.Avail < DiskFullBytes || d.Files > 0 && d.FilesFree == 0)
}

// BackgroundInfo describes a background process. ExitCode is nil while
// it runs.
type BackgroundInfo struct {
	ID        string    `json:"id"`
	PID       int       `json:"pid"`
	Argv      []string  `json:"argv"`
	Running   bool      `json:"running"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	StartedAt time.Time `json:"started_at"`
}

// FileInfo describes a file without following a final symlink; Link is
// the target when the file is a symlink.
type FileInfo struct {
	Name    string      `json:"name"`
	Size    int64       `json:"size"`
	Mode    os.FileMode `json:"mode"`
	ModTime time.Time   `json:"mod_time"`
	IsDir   bool        `json:"is_dir"`
	Link    string      `json:"link,omitempty"`
}

// ValidPath reports whether p is an acceptable sandbox path: absolute,
// clean, no NUL, at most 4096 bytes. The error wraps ErrInvalidArgument.
func ValidPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%w: empty path", errdefs.ErrInvalidArgument)
	case len(p) > maxPathBytes:
		return fmt.Errorf("%w: path of %d bytes is too long", errdefs.ErrInvalidArgument, len(p))
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("%w: path contains a NUL byte", errdefs.ErrInvalidArgument)
	case !path.IsAbs(p):
		return fmt.Errorf("%w: path %q is not absolute", errdefs.ErrInvalidArgument, p)
	case path.Clean(p) != p:
		return fmt.Errorf("%w: path %q is not clean (want %q)", errdefs.ErrInvalidArgument, p, path.Clean(p))
	}
	return nil
}

// Validate checks an exec request the way the agent will, so the host can
// refuse it early. Errors wrap errdefs.ErrInvalidArgument.
func (r *ExecRequest) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: exec: %s", errdefs.ErrInvalidArgument, fmt.Sprintf(format, a...))
	}
	if len(r.Argv) == 0 || r.Argv[0] == "" {
		return bad("command is required")
	}
	if len(r.Argv) > MaxArgs {
		return bad("%d arguments exceed the limit of %d", len(r.Argv), MaxArgs)
	}
	for i, a := range r.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return bad("argument %d contains a NUL byte", i)
		}
	}
	if len(r.Env) > MaxEnv {
		return bad("%d environment variables exceed the limit of %d", len(r.Env), MaxEnv)
	}
	for _, kv := range r.Env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.IndexByte(kv, 0) >= 0 {
			return bad("invalid environment entry %.40q: use KEY=VALUE", kv)
		}
	}
	if r.Workdir != "" {
		if err := ValidPath(r.Workdir); err != nil {
			return fmt.Errorf("exec: workdir: %w", err)
		}
	}
	if len(r.User) > maxUserLen || strings.ContainsAny(r.User, "\x00\n") || strings.Count(r.User, ":") > 1 {
		return bad("malformed user %.40q", r.User)
	}
	if r.Timeout < 0 {
		return bad("negative timeout %v", r.Timeout)
	}
	return nil
}

// DecodeRequest decodes and validates the payload of a FrameRequest. The
// error wraps errdefs.ErrInvalidArgument for a well-formed request with bad
// fields, and ErrProtocol for a payload that is not a request at all.
func DecodeRequest(payload []byte) (*Request, error) {
	var r Request
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, fmt.Errorf("%w: bad request: %v", ErrProtocol, err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

func (r *Request) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", errdefs.ErrInvalidArgument, r.Op, fmt.Sprintf(format, a...))
	}
	needID := func() error {
		if r.ID == "" || len(r.ID) > maxIDLength {
			return bad("missing or overlong id")
		}
		return nil
	}
	needSignal := func() error {
		if r.Signal < 0 || r.Signal > 64 {
			return bad("signal %d out of range", r.Signal)
		}
		return nil
	}
	switch r.Op {
	case OpHello, OpPing, OpBgList, OpShutdown, OpDisk:
		return nil
	case OpExec, OpBgStart:
		if r.Exec == nil {
			return bad("missing exec")
		}
		return r.Exec.Validate()
	case OpSignal, OpBgKill:
		if err := needID(); err != nil {
			return err
		}
		return needSignal()
	case OpResize, OpBgGet, OpBgLogs:
		return needID()
	case OpReadFile:
		if r.Max <= 0 {
			return bad("max must be positive, got %d", r.Max)
		}
		return ValidPath(r.Path)
	case OpWriteFile, OpMkdir:
		if r.Mode&^uint32(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky) != 0 {
			return bad("mode %#o has bits other than permissions", r.Mode)
		}
		return ValidPath(r.Path)
	case OpStat, OpListDir, OpRemove, OpTarOut, OpTarIn:
		return ValidPath(r.Path)
	case OpConfigure:
		if r.Configure == nil {
			return bad("missing configure")
		}
		return r.Configure.Validate()
	}
	return fmt.Errorf("%w: unknown op %.40q", errdefs.ErrNotImplemented, r.Op)
}

// WireError is the payload of FrameError.
type WireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// EncodeError turns err into the payload of a FrameError, classifying
// it by errdefs class first and by errno otherwise.
func EncodeError(err error) WireError {
	msg := err.Error()
	if len(msg) > 8<<10 {
		msg = msg[:8<<10] + "…"
	}
	return WireError{Code: errorCode(err), Message: msg}
}

func errorCode(err error) string {
	if c := errdefs.Code(err); c != "internal" {
		return c
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT:
			return "not_found"
		case syscall.EEXIST:
			return "already_exists"
		case syscall.EACCES, syscall.EPERM, syscall.EROFS:
			return "permission_denied"
		case syscall.ENOTDIR, syscall.EISDIR, syscall.ENOTEMPTY, syscall.ELOOP, syscall.EBUSY, syscall.EXDEV:
			return "failed_precondition"
		case syscall.EINVAL, syscall.ENAMETOOLONG:
			return "invalid_argument"
		case syscall.EFBIG:
			return "too_large"
		}
	}
	return "internal"
}

// Err turns a received WireError into an error whose class (errdefs.Err…)
// errors.Is recognises. An unknown code gives an unclassified error.
func (w WireError) Err() error {
	msg := w.Message
	if len(msg) > 8<<10 {
		msg = msg[:8<<10] + "…"
	}
	if msg == "" {
		msg = fmt.Sprintf("agent error (%.40q)", w.Code)
	}
	return &errdefs.Remote{Class: errdefs.FromCode(w.Code), Message: msg}
}
