package workback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// hardening comes before every git subcommand. Command-line configuration
// outranks the repository's own, so none of these programs or hooks can be
// switched back on by .git/config: hooks (reference-transaction runs on
// update-ref), the fsmonitor hook, a pager, transports, gc and maintenance.
var hardening = []string{
	"--no-pager",
	"--no-replace-objects",
	"-c", "core.hooksPath=" + os.DevNull,
	"-c", "core.fsmonitor=false",
	"-c", "core.pager=cat",
	"-c", "core.sshCommand=false",
	"-c", "core.alternateRefsCommand=",
	"-c", "credential.helper=",
	"-c", "protocol.allow=never",
	"-c", "submodule.recurse=false",
	"-c", "commit.gpgSign=false",
	"-c", "gc.auto=0",
	"-c", "maintenance.auto=false",
}

// gitEnv is the environment of every git command: the caller's, less
// everything that steers git (GIT_DIR, GIT_INDEX_FILE, GIT_CONFIG_*, ...),
// with no system or global configuration (HOME points nowhere, for git
// older than GIT_CONFIG_GLOBAL), no prompts, no optional index writes and
// stable, untranslated messages. extra comes last.
func gitEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "GIT_"), k == "HOME", k == "XDG_CONFIG_HOME",
			k == "PAGER", k == "EDITOR", k == "VISUAL", k == "LC_ALL", k == "LANGUAGE":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"HOME="+os.DevNull,
		"XDG_CONFIG_HOME="+os.DevNull,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_ATTR_NOSYSTEM=1",
		"GIT_NO_REPLACE_OBJECTS=1",
		"GIT_OPTIONAL_LOCKS=0",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_PROTOCOL_FROM_USER=0",
		"GIT_PAGER=cat",
		"PAGER=cat",
		"LC_ALL=C",
	)
	return append(env, extra...)
}

// gitRun is one git command.
type gitRun struct {
	dir    string    // working directory
	env    []string  // added to gitEnv's
	stdin  io.Reader // nil: empty
	stdout io.Writer // nil: returned by run
	args   []string
}

// maxGitStderr bounds how much of git's stderr an error quotes.
const maxGitStderr = 2048

// run runs the command and returns its standard output (unless stdout was
// set). A failure quotes the subcommand and the end of stderr.
func (g gitRun) run(ctx context.Context) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append(append([]string{}, hardening...), g.args...)...)
	cmd.Dir = g.dir
	cmd.Env = gitEnv(g.env...)
	cmd.Stdin = g.stdin
	var out bytes.Buffer
	cmd.Stdout = &out
	if g.stdout != nil {
		cmd.Stdout = g.stdout
	}
	var stderr tailBuffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return out.Bytes(), nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return nil, fmt.Errorf("git is not installed (agentkernel needs it to copy a project in and its changes out): %w", err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	return nil, &GitError{Args: g.args, Err: err, Stderr: strings.TrimSpace(stderr.String())}
}

// GitError is a git command that failed.
type GitError struct {
	Args   []string // the subcommand and its arguments
	Err    error    // usually an *exec.ExitError
	Stderr string   // the end of what git wrote on stderr
}

func (e *GitError) Error() string {
	name := "git"
	for i := 0; i < len(e.Args); i++ {
		if e.Args[i] == "-c" {
			i++
			continue
		}
		name += " " + e.Args[i]
		break
	}
	if e.Stderr == "" {
		return fmt.Sprintf("%s: %v", name, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", name, e.Err, e.Stderr)
}

func (e *GitError) Unwrap() error { return e.Err }

// exitCode is the exit status of a failed git command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// tailBuffer keeps the last maxGitStderr bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > maxGitStderr {
		t.b = append(t.b[:0], t.b[len(t.b)-maxGitStderr:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

// splitNUL splits NUL-terminated records.
func splitNUL(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// userExcludesFile is the ignore file the user's own git would read besides
// .gitignore and .git/info/exclude: core.excludesFile from the system,
// global or repository configuration, else $XDG_CONFIG_HOME/git/ignore or
// ~/.config/git/ignore. Commands run with gitEnv see no global
// configuration, so the path is passed to them explicitly. This is the
// one git command that runs with the user's own environment, to read the
// user's configuration; reading configuration runs no program. "" when
// there is none.
func userExcludesFile(ctx context.Context, dir string) string {
	cmd := exec.CommandContext(ctx, "git", append(append([]string{}, hardening...), "config", "--path", "--get", "core.excludesFile")...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "LC_ALL=C")
	if out, err := cmd.Output(); err == nil {
		if p := strings.TrimSpace(string(out)); p != "" {
			return p
		}
	}
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return x + "/git/ignore"
	}
	if h := os.Getenv("HOME"); h != "" {
		return h + "/.config/git/ignore"
	}
	return ""
}
