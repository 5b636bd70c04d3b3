package agent

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// bgProc is a background process: its description, its exit code once
// known, and the tail of its output.
type bgProc struct {
	id        string
	argv      []string
	startedAt time.Time
	stdout    *ring
	stderr    *ring

	mu       sync.Mutex
	proc     *proc // nil until started, and forever if it could not be
	exitCode *int  // nil while it runs
}

func (b *bgProc) started() *proc {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.proc
}

func (b *bgProc) setExit(code int) {
	b.mu.Lock()
	b.exitCode = &code
	b.mu.Unlock()
}

func (b *bgProc) info() agentproto.BackgroundInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	info := agentproto.BackgroundInfo{ID: b.id, Argv: b.argv, StartedAt: b.startedAt, Running: b.exitCode == nil}
	if b.proc != nil {
		info.PID = b.proc.pid
	}
	if b.exitCode != nil {
		code := *b.exitCode
		info.ExitCode = &code
	}
	return info
}

// bgTable holds at most max background processes; when it is full, the
// oldest exited one is forgotten. Lock order: Server.mu before bgTable.mu.
type bgTable struct {
	max int

	mu   sync.Mutex
	byID map[string]*bgProc
}

func newBGTable(max int) *bgTable {
	return &bgTable{max: max, byID: map[string]*bgProc{}}
}

func (t *bgTable) add(b *bgProc) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.byID) >= t.max {
		var oldest *bgProc
		for _, x := range t.byID {
			if !x.info().Running && (oldest == nil || x.startedAt.Before(oldest.startedAt)) {
				oldest = x
			}
		}
		if oldest == nil {
			return fmt.Errorf("%w: %d background processes are running already", errdefs.ErrFailedPrecondition, t.max)
		}
		delete(t.byID, oldest.id)
	}
	t.byID[b.id] = b
	return nil
}

func (t *bgTable) get(id string) (*bgProc, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b := t.byID[id]; b != nil {
		return b, nil
	}
	return nil, fmt.Errorf("%w: no background process %q", errdefs.ErrNotFound, id)
}

func (t *bgTable) list() []agentproto.BackgroundInfo {
	t.mu.Lock()
	out := make([]agentproto.BackgroundInfo, 0, len(t.byID))
	for _, b := range t.byID {
		out = append(out, b.info())
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].StartedAt.Before(out[j].StartedAt) })
	return out
}

// procs returns the processes of the table that were started.
func (t *bgTable) procs() []*proc {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*proc
	for _, b := range t.byID {
		if p := b.started(); p != nil {
			out = append(out, p)
		}
	}
	return out
}

// bgStart starts a background process and answers with its BackgroundInfo.
// A process that cannot run is remembered as exited (127 or 126) with the
// reason in its stderr log, like an exec.
func (s *Server) bgStart(st io.Writer, req *agentproto.ExecRequest) error {
	if req.Stdin {
		return fmt.Errorf("%w: background processes have no stdin", errdefs.ErrInvalidArgument)
	}
	plan, fail, err := s.prepare(req)
	if err != nil {
		return err
	}
	b := &bgProc{
		id: newID("bg-"), argv: req.Argv, startedAt: time.Now().UTC(),
		stdout: newRing(agentproto.BackgroundLogSize), stderr: newRing(agentproto.BackgroundLogSize),
	}
	if err := s.bg.add(b); err != nil {
		return err
	}
	var c *child
	if fail == nil && !s.track() {
		fail = &agentproto.ExitStatus{Code: 126, Error: "agent is shutting down"}
	} else if fail == nil {
		if c, err = start(plan); err != nil {
			s.wg.Done()
			if fail = forkFailure(req.Argv[0], err); fail == nil {
				return fmt.Errorf("background: %w", err)
			}
		}
	}
	if fail != nil {
		b.stderr.Write([]byte(fail.Error + "\n"))
		b.setExit(fail.Code)
		return result(st, b.info())
	}
	p := &proc{id: b.id, pid: c.pid, pty: c.pty, done: make(chan struct{})}
	b.mu.Lock()
	b.proc = p
	b.mu.Unlock()
	go func() {
		defer s.wg.Done()
		status := supervise(s.ctx, c, p, plan.timeout, b.setExit,
			func(p []byte) { b.stdout.Write(p) }, func(p []byte) { b.stderr.Write(p) })
		b.setExit(status.Code)
		c.close()
	}()
	return result(st, b.info())
}

func (s *Server) bgGet(st io.Writer, id string) error {
	b, err := s.bg.get(id)
	if err != nil {
		return err
	}
	return result(st, b.info())
}

// bgLogs sends the retained stdout, then stderr, then an empty Result.
func (s *Server) bgLogs(st io.Writer, id string) error {
	b, err := s.bg.get(id)
	if err != nil {
		return err
	}
	if err := agentproto.WriteChunked(st, agentproto.FrameStdout, b.stdout.Bytes()); err != nil {
		return err
	}
	if err := agentproto.WriteChunked(st, agentproto.FrameStderr, b.stderr.Bytes()); err != nil {
		return err
	}
	return result(st, struct{}{})
}

func (s *Server) bgKill(st io.Writer, id string, sig int) error {
	b, err := s.bg.get(id)
	if err != nil {
		return err
	}
	if sig == 0 {
		sig = int(syscall.SIGKILL)
	}
	p := b.started()
	if p == nil {
		return fmt.Errorf("%w: background process %s is not running", errdefs.ErrFailedPrecondition, id)
	}
	if err := p.signal(syscall.Signal(sig)); err != nil {
		return err
	}
	return result(st, struct{}{})
}

// ring keeps the last max bytes written to it. Safe for concurrent use.
type ring struct {
	max int

	mu  sync.Mutex
	buf []byte // grows to max, then is overwritten in a circle
	pos int    // where the oldest byte is once buf is full
}

func newRing(max int) *ring { return &ring{max: max} }

func (r *ring) Write(p []byte) (int, error) {
	n := len(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(p) > r.max {
		p = p[len(p)-r.max:]
	}
	if room := r.max - len(r.buf); room > 0 {
		k := min(room, len(p))
		r.buf = append(r.buf, p[:k]...)
		p = p[k:]
	}
	for len(p) > 0 {
		k := copy(r.buf[r.pos:], p)
		p = p[k:]
		r.pos = (r.pos + k) % r.max
	}
	return n, nil
}

// Bytes returns a copy of the retained bytes, oldest first.
func (r *ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]byte, 0, len(r.buf))
	out = append(out, r.buf[r.pos:]...)
	return append(out, r.buf[:r.pos]...)
}
