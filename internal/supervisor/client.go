package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Client talks to the supervisor of one sandbox through its sockets. It holds
// no connection between calls, so it stays valid across supervisor restarts,
// except for the calls on the exec path (see keepHTTP).
type Client struct {
	dir  string
	http *http.Client
	// keepHTTP keeps one connection alive for the small calls every exec
	// makes (SendExecTrace, ClearExecTrace, Audit): a dial each would be
	// most of what tracing and the audit log add to an exec. The trace
	// calls are idempotent, so net/http retries them on a fresh connection
	// when the kept one went stale; the supervisor does not close idle
	// connections, and a restarted sandbox gets a new Client.
	keepHTTP *http.Client
}

// Dial returns a client for the supervisor whose state directory is dir.
// It does not check that the supervisor is alive; Status does.
func Dial(dir string) *Client {
	ctl := filepath.Join(dir, CtlSocket)
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ctl)
	}
	tr := &http.Transport{DialContext: dial, DisableKeepAlives: true}
	keep := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 1, IdleConnTimeout: 30 * time.Second}
	return &Client{dir: dir, http: &http.Client{Transport: tr}, keepHTTP: &http.Client{Transport: keep}}
}

func (c *Client) call(ctx context.Context, method, path string) (Status, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://supervisor"+path, nil)
	if err != nil {
		return Status{}, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Status{}, fmt.Errorf("%w: supervisor: %v", errdefs.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusConflict {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return Status{}, fmt.Errorf("%w: %s", errdefs.ErrFailedPrecondition, strings.TrimSpace(string(msg)))
	}
	if resp.StatusCode != http.StatusOK {
		return Status{}, fmt.Errorf("%w: supervisor answered %s", errdefs.ErrUnavailable, resp.Status)
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return Status{}, fmt.Errorf("supervisor status: %w", err)
	}
	return st, nil
}

// Pause freezes the sandbox's processes; Resume lets them go on. A
// backend that cannot, or a sandbox that has exited, is an error classed
// errdefs.ErrFailedPrecondition.
func (c *Client) Pause(ctx context.Context) (Status, error)  { return c.call(ctx, "POST", "/pause") }
func (c *Client) Resume(ctx context.Context) (Status, error) { return c.call(ctx, "POST", "/resume") }

// Checkpoint writes the sandbox's memory snapshot into dir (an empty
// directory) and leaves it paused; Resume lets it go on.
func (c *Client) Checkpoint(ctx context.Context, dir string) (Status, error) {
	return c.call(ctx, "POST", "/checkpoint?dir="+url.QueryEscape(dir))
}

// Status asks the supervisor how its sandbox is. An error classed
// errdefs.ErrUnavailable means no supervisor answers.
func (c *Client) Status(ctx context.Context) (Status, error) { return c.call(ctx, "GET", "/status") }

// Stop asks the supervisor to stop the sandbox gracefully and waits until
// it is released.
func (c *Client) Stop(ctx context.Context) (Status, error) { return c.call(ctx, "POST", "/stop") }

// Wait blocks until the sandbox ends or ctx is done.
func (c *Client) Wait(ctx context.Context) (Status, error) { return c.call(ctx, "GET", "/wait") }

// DialAgent opens a byte stream to the sandbox's guest agent.
func (c *Client) DialAgent(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(c.dir, AgentSocket))
	if err != nil {
		return nil, fmt.Errorf("%w: agent socket: %v", errdefs.ErrUnavailable, err)
	}
	return conn, nil
}

// PID returns the pid the supervisor recorded, or 0.
func (c *Client) PID() int {
	b, err := os.ReadFile(filepath.Join(c.dir, PIDFile))
	if err != nil {
		return 0
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	return pid
}

// SpawnOptions says how to start a supervisor process.
type SpawnOptions struct {
	// Exe and Args run the supervise role; the ready pipe is fd 3.
	Exe  string
	Args []string
	// Env is the supervisor's entire environment. Pass only what it needs:
	// nothing of the daemon's secrets.
	Env []string
	// Secrets are written to the supervisor's secrets pipe (fd SecretsFD)
	// and never touch a file, argv or the environment.
	Secrets []Secret
}

// Spawn starts a supervisor for the sandbox in dir and waits until it
// reports the sandbox up or fails. The supervisor runs in its own session,
// so it survives the daemon. The returned channel is closed when the
// process exits (the daemon reaps it while it lives).
func Spawn(ctx context.Context, dir string, opts SpawnOptions) (<-chan struct{}, error) {
	logf, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	spr, spw, err := os.Pipe()
	if err != nil {
		pw.Close()
		return nil, err
	}
	cmd := exec.Command(opts.Exe, opts.Args...)
	cmd.Env = opts.Env
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{pw, spr} // fds 3 and SecretsFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pw.Close()
		spr.Close()
		spw.Close()
		return nil, fmt.Errorf("starting supervisor: %w", err)
	}
	pw.Close()
	spr.Close()
	if err := writeSecrets(spw, opts.Secrets); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("handing the supervisor its secrets: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(pr).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case msg := <-line:
		if msg == "ok" {
			return exited, nil
		}
		if msg == "" {
			msg = "supervisor exited before the sandbox was up"
			if e, _ := ReadExit(dir); e != nil && e.Error != "" {
				msg = e.Error
			}
		}
		<-exited
		return nil, fmt.Errorf("%w: %s%s", errdefs.ErrUnavailable, strings.TrimPrefix(msg, "error: "), logTail(dir))
	case <-ctx.Done():
		cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("%w: sandbox did not start: %v", errdefs.ErrDeadlineExceeded, ctx.Err())
	}
}

// writeSecrets writes secrets to the supervisor's pipe w in a goroutine
// (the pipe's buffer may be smaller than them) and closes w; an empty list
// is an empty pipe.
func writeSecrets(w *os.File, secrets []Secret) error {
	if len(secrets) == 0 {
		return w.Close()
	}
	b, err := json.Marshal(secrets)
	if err != nil {
		return err
	}
	go func() {
		// A supervisor that died early makes this fail with EPIPE;
		// its start fails on its own.
		w.Write(b)
		w.Close()
		clear(b)
	}()
	return nil
}

// logTail returns the last lines of the sandbox's console log, to explain a
// failed start.
func logTail(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "console.log"))
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "\nconsole (last lines):\n  " + strings.Join(lines, "\n  ")
}

// waitGone polls until pid no longer exists or ctx ends.
func waitGone(ctx context.Context, pid int) error {
	for {
		if pid <= 0 || syscall.Kill(pid, 0) == syscall.ESRCH {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Kill forcibly ends a supervisor that no longer answers, and waits for it
// to go. The backend's Cleanup releases what it held.
func (c *Client) Kill(ctx context.Context) error {
	pid := c.PID()
	if pid <= 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return waitGone(ctx, pid)
}
