package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/backend"
)

// Named timeouts of the stop sequence.
const (
	// agentShutdownTimeout bounds the agent's graceful shutdown (SIGTERM to
	// its processes, a grace period, SIGKILL).
	agentShutdownTimeout = 5 * time.Second
	// initExitTimeout is how long to wait for the sandbox's init to exit
	// after the agent shut down, before the backend kills it.
	initExitTimeout = 2 * time.Second
	// backendStopTimeout bounds the backend's forced stop and release.
	backendStopTimeout = 30 * time.Second
)

// Config configures Run.
type Config struct {
	// Dir is the sandbox's state directory.
	Dir string
	// Backend starts Spec; Run hands it a copy whose Gateway.Attach is the
	// sandbox's network (when Network is set), which the backend must
	// attach the sandbox to.
	Backend backend.Backend
	Spec    *backend.Spec
	// Network, if set, is the sandbox's network gateway: Run builds it
	// before Start and closes it once the sandbox is released.
	Network *NetworkSpec
	// Ready, if set, receives one line when the sandbox is up ("ok") or
	// failed to start (the error), and is then closed. The daemon passes
	// the write end of a pipe here.
	Ready  io.WriteCloser
	Logger *slog.Logger
}

// Run is the supervisor role: it starts cfg.Spec on cfg.Backend, serves the control and agent sockets, and returns when the
// sandbox has ended and everything it held is released. Cancelling ctx
// stops the sandbox as a requested stop would.
func Run(ctx context.Context, cfg Config) (retErr error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ready := func(msg string) {
		if cfg.Ready != nil {
			fmt.Fprintln(cfg.Ready, msg)
			cfg.Ready.Close()
			cfg.Ready = nil
		}
	}
	defer func() {
		if retErr != nil {
			ready("error: " + retErr.Error())
		}
	}()

	for _, f := range []string{ExitFile, CtlSocket, AgentSocket} {
		os.Remove(filepath.Join(cfg.Dir, f))
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, PIDFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	// The runtime (runc) forks the sandbox's init and exits; as a subreaper
	// the supervisor inherits init and can wait for it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("becoming a subreaper: %w", err)
	}

	startedAt := time.Now()
	name := cfg.Spec.Name
	if cfg.Network != nil && cfg.Network.Sandbox != "" {
		name = cfg.Network.Sandbox
	}
	alog, err := openAuditLog(filepath.Join(cfg.Dir, AuditLogFile), name, cfg.Spec.ID, log)
	if err != nil {
		writeExit(cfg.Dir, &Exit{At: time.Now(), Error: err.Error()})
		return fmt.Errorf("opening the audit log: %w", err)
	}
	defer alog.close()
	netw, inst, err := startWithNetwork(ctx, cfg, alog, log)
	if err != nil {
		writeExit(cfg.Dir, &Exit{At: time.Now(), Error: err.Error()})
		return fmt.Errorf("starting sandbox: %w", err)
	}
	log.Info("sandbox started", "took", time.Since(startedAt))

	s := &server{dir: cfg.Dir, inst: inst, net: netw, audit: alog, log: log, startedAt: startedAt,
		stopCh: make(chan struct{}), doneCh: make(chan struct{}),
		agent: newAgentMonitor(inst, agentProbeInterval)}
	ctlLn, err := listenUnix(filepath.Join(cfg.Dir, CtlSocket))
	if err == nil {
		var agentLn net.Listener
		agentLn, err = listenUnix(filepath.Join(cfg.Dir, AgentSocket))
		if err == nil {
			s.agentLn = agentLn
		} else {
			ctlLn.Close()
		}
	}
	if err != nil {
		s.finish(false, err)
		return err
	}
	httpSrv := &http.Server{Handler: s.mux(), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); httpSrv.Serve(ctlLn) }()
	go func() { defer wg.Done(); s.serveAgent() }()
	go func() {
		defer wg.Done()
		s.agent.run(s.doneCh, func(h AgentHealth) {
			if h.State == AgentOK {
				log.Info("the guest agent answers again")
			} else {
				log.Warn("the guest agent does not answer", "since", h.Since, "err", h.Error)
			}
		})
	}()
	ready("ok")

	requested := false
	select {
	case <-inst.Exited():
		log.Info("sandbox init exited", "err", inst.ExitError())
	case <-s.stopCh:
		requested = true
	case <-ctx.Done():
		requested = true
	}
	s.agentLn.Close()
	if requested {
		// A frozen agent cannot end its processes: thaw it first.
		if s.isPaused() {
			if err := s.setPaused(context.Background(), false); err != nil {
				log.Warn("resuming before the stop", "err", err)
			}
		}
		s.shutdownAgent()
	}
	s.finish(requested, nil)

	// Let /stop and /wait callers read the exit record before closing.
	shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	httpSrv.Shutdown(shutCtx)
	cancel()
	wg.Wait()
	os.Remove(filepath.Join(cfg.Dir, CtlSocket))
	os.Remove(filepath.Join(cfg.Dir, AgentSocket))
	return nil
}

// server holds the supervisor's live state. Its fields are set before the
// listeners start; exit is written once by finish, before doneCh closes.
type server struct {
	dir       string
	inst      backend.Instance
	net       *Network // nil without a gateway
	audit     *auditLog
	log       *slog.Logger
	startedAt time.Time
	agentLn   net.Listener
	agent     *agentMonitor

	// pauseMu serializes pause and resume; paused is read without it, so
	// that Status never waits for a pause in progress.
	pauseMu sync.Mutex
	paused  atomic.Bool

	stopOnce sync.Once
	stopCh   chan struct{} // closed when a stop is requested
	doneCh   chan struct{} // closed when the sandbox has ended
	exit     *Exit
}

func (s *server) requestStop() { s.stopOnce.Do(func() { close(s.stopCh) }) }

// shutdownAgent asks the agent to end every process and exit, then gives
// init a moment to go before the backend kills it.
func (s *server) shutdownAgent() {
	ctx, cancel := context.WithTimeout(context.Background(), agentShutdownTimeout)
	defer cancel()
	conn, err := s.inst.DialAgent(ctx)
	if err != nil {
		s.log.Warn("agent unreachable for shutdown", "err", err)
		return
	}
	c, err := agentproto.NewClient(conn)
	if err != nil {
		conn.Close()
		s.log.Warn("agent handshake for shutdown", "err", err)
		return
	}
	defer c.Close()
	if err := c.Shutdown(ctx); err != nil {
		s.log.Warn("agent shutdown", "err", err)
	}
	select {
	case <-s.inst.Exited():
	case <-time.After(initExitTimeout):
	}
}

// finish releases the sandbox, records the exit and wakes waiters.
func (s *server) finish(requested bool, cause error) {
	ctx, cancel := context.WithTimeout(context.Background(), backendStopTimeout)
	defer cancel()
	e := &Exit{At: time.Now(), Requested: requested}
	if cause != nil {
		e.Error = cause.Error()
	} else if !requested {
		if err := s.inst.ExitError(); err != nil {
			e.Error = err.Error()
		} else {
			e.Error = "sandbox init exited"
		}
	}
	if err := s.inst.Stop(ctx); err != nil {
		s.log.Error("releasing sandbox", "err", err)
		if e.Error == "" {
			e.Error = "releasing sandbox: " + err.Error()
		}
	}
	if s.net != nil {
		s.net.Close()
	}
	if err := writeExit(s.dir, e); err != nil {
		s.log.Error("recording exit", "err", err)
	}
	s.exit = e
	close(s.doneCh)
}

func (s *server) serveAgent() {
	for {
		conn, err := s.agentLn.Accept()
		if err != nil {
			return
		}
		go s.spliceAgent(conn)
	}
}

// spliceAgent copies bytes between a daemon connection and a fresh stream
// to the agent until either side closes.
func (s *server) spliceAgent(conn net.Conn) {
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	agent, err := s.inst.DialAgent(ctx)
	cancel()
	if err != nil {
		s.log.Warn("dialing agent", "err", err)
		return
	}
	defer agent.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(agent, conn); done <- struct{}{} }()
	go func() { io.Copy(conn, agent); done <- struct{}{} }()
	select {
	case <-done:
	case <-s.doneCh:
	}
}

func (s *server) status() Status {
	h := s.agent.current()
	st := Status{State: "running", PID: os.Getpid(), StartedAt: s.startedAt, Agent: &h}
	if s.isPaused() {
		st.State = StatePaused
	}
	select {
	case <-s.doneCh:
		st.State = "exited"
		st.Exit = s.exit
	default:
	}
	return st
}

func (s *server) mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.status())
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		s.requestStop()
		<-s.doneCh
		writeJSON(w, s.status())
	})
	mux.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-s.doneCh:
			writeJSON(w, s.status())
		case <-r.Context().Done():
		}
	})
	s.networkRoutes(mux)
	s.counterRoutes(mux)
	s.pauseRoutes(mux)
	s.checkpointRoutes(mux)
	s.claimRoutes(mux)
	s.auditRoutes(mux)
	s.traceRoutes(mux)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// listenUnix listens on a fresh Unix socket that only the owner may use.
func listenUnix(path string) (net.Listener, error) {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}
