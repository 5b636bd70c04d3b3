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
	maxArgs       = 4096
	maxEnv        = 4096
	maxPathLen    = 4096
	maxUserLen    = 256
	maxImageLen   = 512
	maxBatchFiles = 10000
	// maxTimeout bounds exec timeouts and TTL extensions.
	maxTimeout = 366 * 24 * time.Hour
)

// reservedName is the path segment of the by-UUID lookup; no sandbox may
// take it.
const reservedName = "by-uuid"

var (
	nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	uuidRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	idRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
)

// ValidSandboxName reports whether name may name a sandbox:
// ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$ and not "by-uuid".
func ValidSandboxName(name string) bool {
	return nameRE.MatchString(name) && name != reservedName
}

func checkName(name string) error {
	if !ValidSandboxName(name) {
		return invalidf("invalid sandbox name %q: use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit (and not %q)", name, reservedName)
	}
	return nil
}

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

func checkArgv(argv []string) error {
	if len(argv) == 0 || argv[0] == "" {
		return invalidf("command is required")
	}
	if len(argv) > maxArgs {
		return invalidf("command has more than %d arguments", maxArgs)
	}
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 {
			return invalidf("command argument %d contains a NUL byte", i)
		}
	}
	return nil
}

func checkEnv(env []string) ([]string, error) {
	if len(env) > maxEnv {
		return nil, invalidf("more than %d environment variables", maxEnv)
	}
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.IndexByte(kv, 0) >= 0 {
			return nil, invalidf("invalid environment entry %q: use KEY=VALUE", kv)
		}
	}
	return env, nil
}

// runExecRequest is the exec part of a run request.
func runExecRequest(req api.RunRequest) api.ExecRequest {
	return api.ExecRequest{Command: req.Command, Env: req.Env, Workdir: req.Workdir, Timeout: req.Timeout, Stdin: req.Stdin}
}

func hasNUL(s string) bool { return strings.IndexByte(s, 0) >= 0 }
