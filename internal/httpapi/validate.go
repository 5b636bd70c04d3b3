package httpapi

import (
	"path"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// Limits on request fields. They are far above real use and keep hostile
// input from costing more than a request body's worth of memory.
const (
	maxPathLen    = 4096
	maxUserLen    = 256
	maxImageLen   = 512
	maxBatchFiles = 10000
	// maxTimeout bounds exec timeouts and TTL extensions.
	maxTimeout = 366 * 24 * time.Hour
)

var (
	uuidRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	idRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
)

// checkName validates a sandbox name (api.ValidateSandboxName).
func checkName(name string) error { return api.ValidateSandboxName(name) }

func checkUUID(id string) error {
	if !uuidRE.MatchString(id) {
		return invalidf("invalid sandbox uuid %q", id)
	}
	return nil
}

func checkDetachedID(id string) error {
	if !idRE.MatchString(id) {
		return invalidf("invalid detached command id %q", id)
	}
	return nil
}

func checkImageName(name string) error {
	if name == "" || len(name) > maxImageLen || !utf8.ValidString(name) {
		return invalidf("invalid image name %q", name)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return invalidf("invalid image name %q: no spaces or control characters", name)
		}
	}
	return nil
}

// SandboxPath turns p, a path inside a sandbox as a client sent it, into an
// absolute clean path. Upstream's clients send paths relative to the root
// ("tmp/hello.txt"); leading slashes are accepted too. A path with a NUL
// byte, a "." or ".." component, an empty component or a trailing slash
// (anything that path.Clean would change) is refused with an error that
// names it.
func SandboxPath(p string) (string, error) {
	if len(p) > maxPathLen {
		return "", invalidf("invalid path: longer than %d bytes", maxPathLen)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", invalidf("invalid path %q: contains a NUL byte", p)
	}
	abs := "/" + strings.TrimLeft(p, "/")
	for _, seg := range strings.Split(abs[1:], "/") {
		if seg == ".." {
			return "", invalidf("invalid path %q: '..' is not allowed", p)
		}
	}
	if path.Clean(abs) != abs {
		return "", invalidf("invalid path %q: use a clean path without '.' components, empty components or a trailing slash", p)
	}
	return abs, nil
}

// execOptions validates an exec request. Buffered (non-streaming) execs take
// their standard input in the request and have no TTY; streaming execs send
// standard input as messages.
func execOptions(req api.ExecRequest, streaming bool) (sandbox.ExecOptions, error) {
	if err := checkArgv(req.Command); err != nil {
		return sandbox.ExecOptions{}, err
	}
	return execOptionsAnyArgv(req, streaming)
}

// execOptionsAnyArgv is execOptions without the check of the command, for
// a run without one (the sandbox manager then runs the image's Entrypoint
// and Cmd).
func execOptionsAnyArgv(req api.ExecRequest, streaming bool) (sandbox.ExecOptions, error) {
	env, err := checkEnv(req.Env)
	if err != nil {
		return sandbox.ExecOptions{}, err
	}
	o := sandbox.ExecOptions{Argv: req.Command, Env: env, TTY: req.TTY, Rows: req.Rows, Cols: req.Cols}
	if req.Workdir != "" {
		if !strings.HasPrefix(req.Workdir, "/") {
			return sandbox.ExecOptions{}, invalidf("invalid workdir %q: must be an absolute path", req.Workdir)
		}
		if o.Workdir, err = SandboxPath(req.Workdir); err != nil {
			return sandbox.ExecOptions{}, err
		}
	}
	if len(req.User) > maxUserLen || strings.ContainsAny(req.User, "\x00\n") {
		return sandbox.ExecOptions{}, invalidf("invalid user %q", req.User)
	}
	o.User = req.User
	if req.Sudo {
		switch req.User {
		case "":
			o.User = "0"
		case "0", "root":
		default:
			return sandbox.ExecOptions{}, invalidf("sudo conflicts with user %q", req.User)
		}
	}
	if req.Timeout != "" {
		if o.Timeout, err = api.ParseDuration(req.Timeout); err != nil {
			return sandbox.ExecOptions{}, err
		}
	}
	if streaming {
		if req.Stdin != "" {
			return sandbox.ExecOptions{}, invalidf("stdin is sent as binary messages on a streaming exec, not in the request")
		}
		o.Stdin = true
		if !o.TTY && (o.Rows != 0 || o.Cols != 0) {
			return sandbox.ExecOptions{}, invalidf("rows and cols need tty")
		}
		return o, nil
	}
	if o.TTY || o.Rows != 0 || o.Cols != 0 {
		return sandbox.ExecOptions{}, invalidf("tty, rows and cols are for the streaming exec (GET /sandboxes/{name}/exec/ws)")
	}
	o.Stdin = req.Stdin != ""
	return o, nil
}

// checkArgv validates a command with the one exec check (an empty
// environment and working directory pass it).
func checkArgv(argv []string) error {
	return sandbox.ExecOptions{Argv: argv}.Validate()
}

// checkEnv validates KEY=VALUE entries with the one exec check.
func checkEnv(env []string) ([]string, error) {
	return env, sandbox.ExecOptions{Argv: []string{"-"}, Env: env}.Validate()
}

// runExecRequest is the exec part of a run request.
func runExecRequest(req api.RunRequest) api.ExecRequest {
	return api.ExecRequest{Command: req.Command, Env: req.Env, Workdir: req.Workdir, Timeout: req.Timeout, Stdin: req.Stdin}
}

func hasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }
