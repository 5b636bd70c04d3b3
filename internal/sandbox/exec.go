package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// agentFor returns the agent client of a running sandbox, or a
// failed-precondition error that says how to start it.
func (m *Manager) agentFor(ctx context.Context, name string) (*agentproto.Client, string, error) {
	c, rec, err := m.agentAndRecord(ctx, name)
	return c, rec.UUID, err
}

// agentAndRecord is agentFor, also returning the sandbox's record (one
// store read per exec, not one per question asked of it).
func (m *Manager) agentAndRecord(ctx context.Context, name string) (*agentproto.Client, store.Sandbox, error) {
	rec, err := m.lookup(ctx, name)
	if err != nil {
		return nil, rec, err
	}
	if rec.Status == api.StatusPaused {
		return nil, rec, fmt.Errorf("%w: sandbox %q is paused; resume it with `agentkernel sandbox resume %s`", errdefs.ErrFailedPrecondition, name, name)
	}
	l := m.getLive(rec.UUID)
	if l == nil {
		return nil, rec, fmt.Errorf("%w: sandbox %q is %s; start it with `agentkernel sandbox start %s`", errdefs.ErrFailedPrecondition, name, rec.Status, name)
	}
	c, err := l.agentClient(ctx)
	if err != nil {
		return nil, rec, m.explainAgentFailure(ctx, rec.UUID, name, err)
	}
	return c, rec, nil
}

// explainAgentFailure adds what the sandbox's supervisor knows to err, a
// failure to reach a running sandbox's agent: when its probes found the
// agent unresponsive, the error says since when and what to do, instead of
// a bare "stream ended early".
func (m *Manager) explainAgentFailure(ctx context.Context, uuid, name string, err error) error {
	if !errors.Is(err, errdefs.ErrUnavailable) {
		return err
	}
	l := m.getLive(uuid)
	if l == nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	st, serr := l.sup.Status(sctx)
	if serr != nil || st.Agent == nil || st.Agent.State != supervisor.AgentUnresponsive {
		return err
	}
	return fmt.Errorf("%w: sandbox %s: its guest agent has not answered since %s (%s); processes in the sandbox may have used up its memory, process or file limits: stop and start it (agentkernel sandbox stop %s)",
		errdefs.ErrUnavailable, name, st.Agent.Since.UTC().Format(time.RFC3339), st.Agent.Error, name)
}

// Exec starts a process in a running sandbox.
func (m *Manager) Exec(ctx context.Context, name string, req ExecOptions) (Process, error) {
	c, rec, err := m.agentAndRecord(ctx, name)
	if err != nil {
		return nil, err
	}
	uuid := rec.UUID
	envs := envNames(req.Env)
	if req, err = withImageDefaults(rec, req); err != nil {
		return nil, err
	}
	ctx, endSpan := m.traceExec(ctx, name, uuid, &req)
	p, err := c.Exec(ctx, toAgentExec(req))
	if err != nil {
		endSpan(-1, err)
		return nil, m.explainAgentFailure(ctx, uuid, name, fmt.Errorf("sandbox %s: exec: %w", name, err))
	}
	m.event(uuid, name, "command_executed", map[string]any{"command": req.Argv, "pid": p.PID(), "tty": req.TTY})
	return &process{Process: p, cut: func(err error) error {
		return m.explainCut(ctx, uuid, name, "the command", err)
	}, finished: func(st agentproto.ExitStatus, err error, took time.Duration) {
		// The audit record: what ran, as whom, where, how it ended and
		// how much it wrote. Environment values are never recorded (they
		// may hold secret placeholders); only their names.
		d := map[string]any{"command": req.Argv, "pid": p.PID(), "exit_code": st.Code, "duration_ms": took.Milliseconds(),
			"duration_ns": took.Nanoseconds(), "user": req.User, "workdir": req.Workdir, "tty": req.TTY, "bytes_out": p.BytesOut()}
		if len(envs) > 0 {
			d["env_names"] = envs
		}
		if st.Signal != 0 {
			d["signal"] = st.Signal
		}
		if st.TimedOut {
			d["timed_out"] = true
		}
		if err != nil {
			d["error"] = err.Error()
		}
		endSpan(st.Code, err)
		m.event(uuid, name, "command_finished", d)
		if m.cfg.Observer != nil {
			m.cfg.Observer.Observe("exec", rec.Backend, took, err)
		}
	}, started: time.Now()}, nil
}

func toAgentExec(req ExecOptions) agentproto.ExecRequest {
	return agentproto.ExecRequest{
		Argv: req.Argv, Env: req.Env, Workdir: req.Workdir, User: req.User,
		TTY: req.TTY, Rows: req.Rows, Cols: req.Cols, Stdin: req.Stdin, Timeout: req.Timeout,
	}
}

// process adapts an agent process to the API's Process, and records how
// it finished (once, however often Wait is called).
type process struct {
	*agentproto.Process
	started  time.Time
	once     sync.Once
	finished func(agentproto.ExitStatus, error, time.Duration)
	// cut explains an error of a stream its sandbox's end cut off.
	cut func(error) error
}

func (p *process) Wait() (ExitStatus, error) {
	st, err := p.Process.Wait()
	if err != nil && p.cut != nil {
		err = p.cut(err)
	}
	p.once.Do(func() { p.finished(st, err, time.Since(p.started)) })
	return ExitStatus{Code: st.Code, Signal: st.Signal, TimedOut: st.TimedOut, Error: st.Error}, err
}

// StartDetached starts a background process that outlives the request.
func (m *Manager) StartDetached(ctx context.Context, name string, req ExecOptions) (api.DetachedCommand, error) {
	c, rec, err := m.agentAndRecord(ctx, name)
	if err != nil {
		return api.DetachedCommand{}, err
	}
	uuid := rec.UUID
	if req, err = withImageDefaults(rec, req); err != nil {
		return api.DetachedCommand{}, err
	}
	req.Stdin, req.TTY = false, false
	bg, err := c.StartBackground(ctx, toAgentExec(req))
	if err != nil {
		return api.DetachedCommand{}, fmt.Errorf("sandbox %s: %w", name, err)
	}
	m.event(uuid, name, "command_detached", map[string]any{"command": req.Argv, "id": bg.ID})
	return toDetached(name, bg), nil
}

func toDetached(sandbox string, bg agentproto.BackgroundInfo) api.DetachedCommand {
	d := api.DetachedCommand{ID: bg.ID, Sandbox: sandbox, Command: bg.Argv, PID: bg.PID, ExitCode: bg.ExitCode, StartedAt: bg.StartedAt}
	switch {
	case bg.Running:
		d.Status = api.DetachedRunning
	case bg.ExitCode != nil && *bg.ExitCode == 0:
		d.Status = api.DetachedCompleted
	default:
		d.Status = api.DetachedFailed
	}
	return d
}

// ListDetached lists a sandbox's background processes, as its agent
// remembers them (so they survive daemon restarts).
func (m *Manager) ListDetached(ctx context.Context, name string) ([]api.DetachedCommand, error) {
	c, _, err := m.agentFor(ctx, name)
	if err != nil {
		return nil, err
	}
	bgs, err := c.ListBackground(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.DetachedCommand, 0, len(bgs))
	for _, bg := range bgs {
		out = append(out, toDetached(name, bg))
	}
	return out, nil
}

// GetDetached describes one background process.
func (m *Manager) GetDetached(ctx context.Context, name, id string) (api.DetachedCommand, error) {
	c, _, err := m.agentFor(ctx, name)
	if err != nil {
		return api.DetachedCommand{}, err
	}
	bg, err := c.GetBackground(ctx, id)
	if err != nil {
		return api.DetachedCommand{}, err
	}
	return toDetached(name, bg), nil
}

// DetachedLogs returns what a background process has written (bounded).
func (m *Manager) DetachedLogs(ctx context.Context, name, id string) (api.DetachedLogs, error) {
	c, _, err := m.agentFor(ctx, name)
	if err != nil {
		return api.DetachedLogs{}, err
	}
	stdout, stderr, err := c.BackgroundLogs(ctx, id)
	if err != nil {
		return api.DetachedLogs{}, err
	}
	return api.DetachedLogs{Stdout: string(stdout), Stderr: string(stderr)}, nil
}

// KillDetached kills a background process.
func (m *Manager) KillDetached(ctx context.Context, name, id string) error {
	c, _, err := m.agentFor(ctx, name)
	if err != nil {
		return err
	}
	return c.KillBackground(ctx, id, syscall.SIGKILL)
}

// ReadFile reads a whole file of at most max bytes.
func (m *Manager) ReadFile(ctx context.Context, name, path string, max int64) ([]byte, error) {
	c, _, err := m.agentFor(ctx, name)
	if err != nil {
		return nil, err
	}
	return c.ReadFile(ctx, path, max)
}

// WriteFile writes a file, creating its parent directories.
func (m *Manager) WriteFile(ctx context.Context, name, path string, mode uint32, r io.Reader) error {
	c, uuid, err := m.agentFor(ctx, name)
	if err != nil {
		return err
	}
	if mode == 0 {
		mode = 0o644
	}
	if err := c.WriteFile(ctx, path, os.FileMode(mode), r); err != nil {
		if cut := m.explainCut(ctx, uuid, name, "the file write", err); cut != err {
			return cut
		}
		return fmt.Errorf("sandbox %s: writing %s: %w", name, path, err)
	}
	m.event(uuid, name, "file_written", map[string]any{"path": path})
	return nil
}

// DeleteFile removes a file, or a directory tree with recursive.
func (m *Manager) DeleteFile(ctx context.Context, name, path string, recursive bool) error {
	c, uuid, err := m.agentFor(ctx, name)
	if err != nil {
		return err
	}
	if err := c.Remove(ctx, path, recursive); err != nil {
		return err
	}
	m.event(uuid, name, "file_deleted", map[string]any{"path": path})
	return nil
}

// ListDir lists a directory.
func (m *Manager) ListDir(ctx context.Context, name, path string) ([]api.FileInfo, error) {
	c, _, err := m.agentFor(ctx, name)
	if err != nil {
		return nil, err
	}
	fis, err := c.ListDir(ctx, path)
	if err != nil {
		return nil, err
	}
	out := make([]api.FileInfo, 0, len(fis))
	for _, fi := range fis {
		out = append(out, api.FileInfo{Name: fi.Name, Size: fi.Size, Mode: fi.Mode.String(), IsDir: fi.IsDir, ModTime: fi.ModTime, Link: fi.Link})
	}
	return out, nil
}

// Mkdir makes a directory and its parents.
func (m *Manager) Mkdir(ctx context.Context, name, path string) error {
	c, _, err := m.agentFor(ctx, name)
	if err != nil {
		return err
	}
	return c.Mkdir(ctx, path, 0o755, true)
}

// TarOut writes a tar stream of path in the sandbox to w.
func (m *Manager) TarOut(ctx context.Context, name, path string, w io.Writer) error {
	c, uuid, err := m.agentFor(ctx, name)
	if err != nil {
		return err
	}
	rc, err := c.TarOut(ctx, path)
	if err != nil {
		return m.explainCut(ctx, uuid, name, "the copy out of it", err)
	}
	defer rc.Close()
	if _, err := io.Copy(w, rc); err != nil {
		return m.explainCut(ctx, uuid, name, "the copy out of it", err)
	}
	m.event(uuid, name, "file_read", map[string]any{"path": path})
	return nil
}

// TarIn extracts a tar stream into dir in the sandbox.
func (m *Manager) TarIn(ctx context.Context, name, dir string, r io.Reader) error {
	c, uuid, err := m.agentFor(ctx, name)
	if err != nil {
		return err
	}
	if err := c.TarIn(ctx, dir, r); err != nil {
		if cut := m.explainCut(ctx, uuid, name, "the copy into it", err); cut != err {
			return cut
		}
		return fmt.Errorf("sandbox %s: copying into %s: %w", name, dir, err)
	}
	m.event(uuid, name, "file_written", map[string]any{"path": dir, "tar": true})
	return nil
}
