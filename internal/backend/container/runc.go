package container

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// runtimeWaitDelay bounds how long a runc command may outlive its context.
const runtimeWaitDelay = 2 * time.Second

// runc runs the OCI runtime binary (runc, or runsc for the gvisor flavor)
// against one state root.
type runc struct {
	path string // absolute path of the runtime binary
	root string // --root: where the runtime keeps container state
	// flags are global flags after --root (runsc's platform, network,
	// overlay and host-UDS settings; see gvisor.go).
	flags []string
	// platform is the gVisor platform the flags name ("" for runc).
	platform string
}

// global returns the runtime's global flags followed by args.
func (r *runc) global(args ...string) []string {
	out := append([]string{"--root", r.root}, r.flags...)
	return append(out, args...)
}

// name is the runtime's base name, for error messages.
func (r *runc) name() string { return filepath.Base(r.path) }

// boundedBuffer keeps the first max bytes written to it.
type boundedBuffer struct {
	bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// command runs the runtime with args; it returns stdout, and an error that
// quotes stderr (at most 8 KiB of either is kept).
func (r *runc) command(ctx context.Context, args ...string) ([]byte, error) {
	return r.commandIn(ctx, nil, args...)
}

// commandIn is command with stdin (nil: none).
func (r *runc) commandIn(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.path, r.global(args...)...)
	cmd.Stdin = stdin
	stdout := &boundedBuffer{max: 8 << 10}
	stderr := &boundedBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = runtimeWaitDelay
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.Bytes(), &runtimeError{runtime: r.name(), args: args, err: err, msg: msg}
	}
	return stdout.Bytes(), nil
}

// runtimeError is a failed runtime command, with what it printed.
type runtimeError struct {
	runtime string
	args    []string
	err     error
	msg     string
}

func (e *runtimeError) Error() string {
	rt := e.runtime
	if rt == "" {
		rt = "runc"
	}
	return fmt.Sprintf("%s %s: %v: %s", rt, strings.Join(e.args, " "), e.err, e.msg)
}

func (e *runtimeError) Unwrap() error { return e.err }

// notExist reports whether err says the container does not exist.
func notExist(err error) bool {
	var re *runtimeError
	return errors.As(err, &re) && strings.Contains(re.msg, "does not exist")
}

// run creates and starts container id from bundle, detached. The
// container's stdio goes to console (stdin is /dev/null); runc's own
// messages go there too and, on failure, are quoted from it.
// flags are global flags for this run only (runsc's --network).
func (r *runc) run(ctx context.Context, id, bundle, pidFile string, console *os.File, flags ...string) error {
	args := append(flags, "run", "--detach", "--bundle", bundle, "--pid-file", pidFile, id)
	return r.runArgs(ctx, args, console)
}

// runArgs runs the runtime with args and its stdio on console, quoting
// what it wrote there on failure.
func (r *runc) runArgs(ctx context.Context, args []string, console *os.File) error {
	cmd := exec.CommandContext(ctx, r.path, r.global(args...)...)
	cmd.Stdout, cmd.Stderr = console, console
	cmd.WaitDelay = runtimeWaitDelay
	start, _ := console.Seek(0, io.SeekEnd)
	if err := cmd.Run(); err != nil {
		return &runtimeError{runtime: r.name(), args: args, err: err, msg: tailFrom(console.Name(), start, 4<<10)}
	}
	return nil
}

// kill sends sig to the container's init; a missing or stopped container is
// not an error.
func (r *runc) kill(ctx context.Context, id, sig string) error {
	_, err := r.command(ctx, "kill", id, sig)
	if err != nil && (notExist(err) || strings.Contains(err.Error(), "not running") ||
		strings.Contains(err.Error(), "process already finished")) {
		return nil
	}
	return err
}

// update changes a running container's cgroup limits to res (its memory,
// CPU and pids limits; the device rules stay as they were).
func (r *runc) update(ctx context.Context, id string, res *specs.LinuxResources) error {
	b, err := json.Marshal(specs.LinuxResources{Memory: res.Memory, CPU: res.CPU, Pids: res.Pids})
	if err != nil {
		return err
	}
	_, err = r.commandIn(ctx, bytes.NewReader(b), "update", "--resources", "-", id)
	return err
}

// delete removes the container's state and cgroup, killing what is left.
// A container that does not exist is not an error.
//
// runsc's delete talks to the sandbox's control server; while a sandbox
// is still going away that can be refused, so a refused delete is retried
// (briefly: a dead sandbox's state is then removed without it).
func (r *runc) delete(ctx context.Context, id string) error {
	for attempt := 0; ; attempt++ {
		_, err := r.command(ctx, "delete", "--force", id)
		if err != nil && notExist(err) {
			return nil
		}
		if err == nil || r.platform == "" || attempt >= 20 || !strings.Contains(err.Error(), "connection refused") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// version returns what the runtime's --version prints.
func (r *runc) version(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, r.path, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%w: %s --version: %v", errdefs.ErrFailedPrecondition, r.path, err)
	}
	return string(out), nil
}

// seccompVersion returns the libseccomp version runc reports, or "".
func seccompVersion(versionOutput string) string {
	for _, l := range strings.Split(versionOutput, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "libseccomp:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// tailFrom returns up to max bytes of file p written after offset start.
func tailFrom(p string, start int64, max int64) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	if fi.Size()-start > max {
		start = fi.Size() - max
	}
	if start < 0 {
		start = 0
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, start, max))
	return strings.TrimSpace(string(b))
}
