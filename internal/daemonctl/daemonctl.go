// Package daemonctl finds the agentkernel daemon for the CLI, starting one
// when none answers, so a user never has to run `agentkernel serve`. It is
// deliberately small: the CLI imports it, and the CLI must not pull in the
// daemon, the store or any backend.
package daemonctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/daemonconf"
	"github.com/agentkernel/agentkernel/internal/paths"
)

// startTimeout is how long a freshly spawned daemon gets to answer.
const startTimeout = 15 * time.Second

// Alive reports whether a daemon accepts connections on the layout's socket.
func Alive(layout paths.Layout) bool {
	conn, err := net.DialTimeout("unix", layout.Socket(), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// EnsureRunning returns once a daemon answers on layout's socket, starting
// `exe serve` in the background (its own session, output to the daemon
// log) if none does.
func EnsureRunning(ctx context.Context, layout paths.Layout, exe string) error {
	if Alive(layout) {
		return nil
	}
	if err := layout.EnsureDirs(); err != nil {
		return fmt.Errorf("preparing %s: %w", layout.Home, err)
	}
	logf, err := os.OpenFile(layout.DaemonLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	logStart, _ := logf.Seek(0, 2)
	cmd := exec.Command(exe, "serve", "--no-tcp")
	cmd.Env = append(scrubbedEnv(), "AGENTKERNEL_HOME="+layout.Home)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var exitErr error
	for {
		if Alive(layout) {
			return nil
		}
		select {
		case err := <-exited:
			// Another CLI may have started a daemon at the same moment;
			// ours then exits because the lock is taken, and the other
			// one may still be starting: keep waiting for the socket.
			exitErr = err
			exited = nil
			if !daemonHoldsLock(layout) {
				return exitedAtStart(layout, logStart, exitErr)
			}
		case <-ctx.Done():
			if exitErr != nil {
				return exitedAtStart(layout, logStart, exitErr)
			}
			return errors.New("the daemon did not answer within " + startTimeout.String() + "; see " + layout.DaemonLog())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// exitedAtStart is the error for a daemon that exited before it answered:
// its own last words (what it wrote to the log since from, such as "the
// store … is corrupt: restore it from a backup"), so that the user does not
// have to go and read the log to learn why.
func exitedAtStart(layout paths.Layout, from int64, exitErr error) error {
	why := ""
	if f, err := os.Open(layout.DaemonLog()); err == nil {
		buf := make([]byte, 4096)
		if st, err := f.Stat(); err == nil && st.Size()-from > int64(len(buf)) {
			from = st.Size() - int64(len(buf))
		}
		n, _ := f.ReadAt(buf, from)
		f.Close()
		lines := strings.Split(strings.TrimSpace(string(buf[:n])), "\n")
		why = strings.TrimPrefix(strings.TrimSpace(lines[len(lines)-1]), "agentkernel: ")
		if len(why) > 600 {
			why = why[:600] + "…"
		}
	}
	if why == "" {
		return fmt.Errorf("the daemon exited at start (%v); see %s", exitErr, layout.DaemonLog())
	}
	return fmt.Errorf("the daemon exited at start (%v): %s (see %s)", exitErr, why, layout.DaemonLog())
}

// daemonSettings are the AGENTKERNEL_* variables that configure a daemon
// rather than a client; a daemon the CLI starts inherits them.
var daemonSettings = map[string]bool{
	daemonconf.DefaultPoolSizeEnv: true,
	"AGENTKERNEL_LOG":             true, // the log level (debug, warn, error)
	"AGENTKERNEL_MICROVM_ACCEL":   true, // kvm, tcg or the probe's choice
	"AGENTKERNEL_MICROVM_DEBUG":   true,
	"AGENTKERNEL_AGENT":           true, // the guest agent binary
	"AGENTKERNEL_AUDIT":           true, // 0 or false: no audit log
}

// scrubbedEnv is the CLI's environment minus what a daemon must not
// inherit from one user's shell: API keys and the client's own settings.
func scrubbedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case daemonSettings[k]:
			env = append(env, kv)
		case strings.HasPrefix(k, "AGENTKERNEL_"):
		case strings.Contains(k, "KEY"), strings.Contains(k, "TOKEN"), strings.Contains(k, "SECRET"), strings.Contains(k, "PASSWORD"):
		default:
			env = append(env, kv)
		}
	}
	return env
}

// daemonHoldsLock reports whether some daemon holds the home's lock (the
// flock on its pid file), that is, is running or starting.
func daemonHoldsLock(layout paths.Layout) bool {
	f, err := os.Open(layout.PIDFile())
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return true
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}
