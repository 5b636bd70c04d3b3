package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Defaults and limits of a Server.
const (
	DefaultShutdownGrace = 3 * time.Second
	DefaultMaxBackground = 32
	// maxStreams bounds the streams one session handles at once.
	maxStreams = 1024
	// requestTimeout bounds the wait for a stream's request frame.
	requestTimeout = 30 * time.Second
)

// Config configures a Server. Zero values mean the documented defaults; the
// Server never changes it.
type Config struct {
	// AgentVersion is reported in the hello; "dev" when empty.
	AgentVersion string
	// Root is the directory whose etc/passwd and etc/group resolve users;
	// "/" when empty.
	Root string
	// Logger receives the agent's diagnostics; nil discards them.
	Logger *slog.Logger
	// ShutdownGrace is how long processes get between SIGTERM and SIGKILL
	// on shutdown; DefaultShutdownGrace when zero.
	ShutdownGrace time.Duration
	// MaxBackground is how many background processes are remembered;
	// DefaultMaxBackground when zero.
	MaxBackground int
	// OnShutdown is called, in its own goroutine, once a shutdown request
	// has stopped every process and been answered. The agent binary exits
	// there; nil does nothing.
	OnShutdown func()
}

// Server is the guest agent: it serves the agentproto protocol on any
// number of sessions and owns every process started through it.
//
// New creates it; Close stops the sessions, kills every process it started
// and waits for its goroutines. Its methods are safe for concurrent use.
// Processes started by exec belong to the session that started them and are
// killed when it ends; background processes belong to the Server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // the Server's lifetime; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // sessions and background supervisors

	mu     sync.Mutex
	closed bool             // set by Close; no new goroutine is tracked after
	execs  map[string]*proc // running exec'd processes by id
	bg     *bgTable
}

// track adds one to wg unless the Server is closed.
func (s *Server) track() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// New returns a Server with cfg.
func New(cfg Config) *Server {
	if cfg.AgentVersion == "" {
		cfg.AgentVersion = "dev"
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.MaxBackground <= 0 {
		cfg.MaxBackground = DefaultMaxBackground
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, log: log, ctx: ctx, cancel: cancel,
		execs: map[string]*proc{},
		bg:    newBGTable(cfg.MaxBackground),
	}
}

// Close ends every session, kills every process the Server started and
// waits for its goroutines. Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	for _, p := range s.allProcs() {
		p.signal(syscall.SIGKILL)
	}
	s.wg.Wait()
	return nil
}

// Serve accepts connections on l and serves a session on each until ctx
// ends or the Server is closed; then it closes l and waits for the
// sessions it started.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	stop2 := context.AfterFunc(s.ctx, func() { l.Close() })
	defer stop2()
	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || s.ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("agent: accept: %w", err)
			}
			// Anything else is the sandbox's own doing (EMFILE, ENFILE,
			// ENOMEM after a fork bomb or a descriptor leak) and passes:
			// giving up would leave a running sandbox whose every exec
			// fails. Wait, as net/http does, and try again.
			backoff = acceptBackoff(backoff)
			s.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			if !sleepCtx(ctx, s.ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		wg.Go(func() {
			if err := s.ServeConn(ctx, conn); err != nil {
				s.log.Warn("session failed", "err", err)
			}
		})
	}
}

// acceptBackoff is the wait after a failed accept that followed a wait of
// prev: 5 ms, doubling to at most a second.
func acceptBackoff(prev time.Duration) time.Duration {
	const first, max = 5 * time.Millisecond, time.Second
	if prev == 0 {
		return first
	}
	return min(2*prev, max)
}

// sleepCtx waits d and reports true, or false as soon as a or b ends.
func sleepCtx(a, b context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.Done():
		return false
	case <-b.Done():
		return false
	case <-t.C:
		return true
	}
}

// ServeConn serves one yamux session over conn, which it owns, until the
// peer goes away, ctx ends or the Server is closed. Processes exec'd in the
// session are killed when it ends.
func (s *Server) ServeConn(ctx context.Context, conn io.ReadWriteCloser) error {
	if !s.track() {
		conn.Close()
		return fmt.Errorf("agent: %w: server closed", errdefs.ErrUnavailable)
	}
	defer s.wg.Done()
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	cfg.KeepAliveInterval = 15 * time.Second
	cfg.StreamCloseTimeout = time.Minute
	sess, err := yamux.Server(conn, cfg)
	if err != nil {
		conn.Close()
		return fmt.Errorf("agent: session: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopLife := context.AfterFunc(s.ctx, cancel)
	defer stopLife()
	stopSess := context.AfterFunc(sctx, func() { sess.Close() })
	defer stopSess()
	s.log.Debug("session started")

	var wg sync.WaitGroup
	sem := make(chan struct{}, maxStreams)
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			agentproto.WriteJSON(st, agentproto.FrameError, agentproto.EncodeError(
				fmt.Errorf("%w: more than %d operations at once", errdefs.ErrUnavailable, maxStreams)))
			st.Close()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			s.handleStream(sctx, st)
		})
	}
	cancel() // the session is gone: abandon its processes
	wg.Wait()
	sess.Close()
	s.log.Debug("session ended")
	return nil
}

// handleStream reads a stream's request and runs it; an error becomes the
// stream's last frame.
func (s *Server) handleStream(ctx context.Context, st *yamux.Stream) {
	defer st.Close()
	st.SetReadDeadline(time.Now().Add(requestTimeout))
	f, err := agentproto.ReadFrame(st)
	if err != nil {
		return
	}
	st.SetReadDeadline(time.Time{})
	var req *agentproto.Request
	if f.Type != agentproto.FrameRequest {
		err = fmt.Errorf("%w: stream starts with a %s frame", agentproto.ErrProtocol, f.Type)
	} else {
		req, err = agentproto.DecodeRequest(f.Payload)
	}
	if err == nil {
		err = s.dispatch(ctx, st, req)
	}
	if err != nil {
		op := "?"
		if req != nil {
			op = req.Op
		}
		s.log.Debug("op failed", "op", op, "err", err)
		agentproto.WriteJSON(st, agentproto.FrameError, agentproto.EncodeError(err))
	}
}

func (s *Server) dispatch(ctx context.Context, st *yamux.Stream, req *agentproto.Request) error {
	switch req.Op {
	case agentproto.OpHello:
		return result(st, s.hello())
	case agentproto.OpPing:
		return result(st, struct{}{})
	case agentproto.OpDisk:
		d, err := diskStat(true)
		if err != nil {
			return err
		}
		return result(st, d)
	case agentproto.OpExec:
		return s.handleExec(ctx, st, req.Exec)
	case agentproto.OpSignal:
		return s.withExec(st, req.ID, func(p *proc) error { return p.signal(syscall.Signal(req.Signal)) })
	case agentproto.OpResize:
		return s.withExec(st, req.ID, func(p *proc) error { return p.resize(req.Rows, req.Cols) })
	case agentproto.OpBgStart:
		return s.bgStart(st, req.Exec)
	case agentproto.OpBgList:
		return result(st, s.bg.list())
	case agentproto.OpBgGet:
		return s.bgGet(st, req.ID)
	case agentproto.OpBgLogs:
		return s.bgLogs(st, req.ID)
	case agentproto.OpBgKill:
		return s.bgKill(st, req.ID, req.Signal)
	case agentproto.OpShutdown:
		return s.handleShutdown(ctx, st)
	case agentproto.OpConfigure:
		if err := configure(req.Configure); err != nil {
			return err
		}
		return result(st, struct{}{})
	}
	return s.fileOp(ctx, st, req)
}

// configure applies a Configure: the environment every later exec starts
// from and the host name.
func configure(c *agentproto.Configure) error {
	if c == nil {
		return fmt.Errorf("%w: configure without settings", errdefs.ErrInvalidArgument)
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Hostname != "" {
		if err := unix.Sethostname([]byte(c.Hostname)); err != nil {
			return fmt.Errorf("%w: setting the host name: %v", errdefs.ErrFailedPrecondition, err)
		}
	}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return fmt.Errorf("%w: setting %s: %v", errdefs.ErrInvalidArgument, k, err)
		}
	}
	return nil
}

// result writes v as the stream's Result frame.
func result(w io.Writer, v any) error {
	if err := agentproto.WriteJSON(w, agentproto.FrameResult, v); err != nil {
		return fmt.Errorf("%w: write result: %v", errdefs.ErrUnavailable, err)
	}
	return nil
}

func (s *Server) hello() agentproto.HelloInfo {
	info := agentproto.HelloInfo{
		Version: agentproto.Version, AgentVersion: s.cfg.AgentVersion,
		PID: os.Getpid(), UID: os.Getuid(), Arch: runtime.GOARCH,
	}
	info.Hostname, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		info.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	return info
}

// newID returns a random id with prefix.
func newID(prefix string) string {
	var b [8]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
