package agent

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
)

// killWait is how long StopAll waits for processes after SIGKILL.
const killWait = 2 * time.Second

// handleShutdown stops every process, syncs filesystems, answers, and then
// calls Config.OnShutdown.
func (s *Server) handleShutdown(ctx context.Context, st *yamux.Stream) error {
	s.log.Info("shutdown requested")
	s.StopAll(ctx)
	unix.Sync()
	err := result(st, struct{}{})
	st.Close()
	if s.cfg.OnShutdown != nil {
		go s.cfg.OnShutdown()
	}
	return err
}

// StopAll sends SIGTERM to the process group of every process the Server
// started (and, when the agent is init, to every process in its PID
// namespace), waits up to Config.ShutdownGrace for them to exit, then sends
// SIGKILL and waits a little more. It does not stop the Server.
func (s *Server) StopAll(ctx context.Context) {
	s.signalAll(syscall.SIGTERM)
	if s.waitAll(ctx, s.cfg.ShutdownGrace) {
		return
	}
	s.log.Info("processes survived SIGTERM; sending SIGKILL")
	s.signalAll(syscall.SIGKILL)
	s.waitAll(ctx, killWait)
}

// Forward sends sig to the process group of every process the Server
// started and, when the agent is init, to every process in its namespace.
func (s *Server) Forward(sig syscall.Signal) { s.signalAll(sig) }

func (s *Server) signalAll(sig syscall.Signal) {
	for _, p := range s.allProcs() {
		p.signal(sig)
	}
	if os.Getpid() == 1 {
		syscall.Kill(-1, sig) // every process but init itself
	}
}

// waitAll waits until every process is gone or d has passed; it reports
// whether they are gone.
func (s *Server) waitAll(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if s.allExited() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) allExited() bool {
	for _, p := range s.allProcs() {
		select {
		case <-p.done:
		default:
			return false
		}
	}
	if os.Getpid() != 1 {
		return true
	}
	// As init, wait for orphans too: no child left at all.
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err == unix.ECHILD
}
