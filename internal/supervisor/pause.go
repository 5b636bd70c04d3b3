package supervisor

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/agentkernel/agentkernel/internal/backend"
)

// Pause and resume. A paused sandbox's processes are frozen by its
// backend (backend.Pauser); the supervisor remembers it, reports "paused"
// in Status, stops probing the agent (a frozen agent does not answer, and
// is not unhealthy) and resumes before a stop, so the agent can end its
// processes gracefully.

// StatePaused is Status.State of a paused sandbox.
const StatePaused = "paused"

// pauseTimeout bounds one pause or resume.
const pauseTimeout = 30 * time.Second

// setPaused pauses or resumes the instance; it errors when the backend
// cannot.
func (s *server) setPaused(ctx context.Context, pause bool) error {
	p, ok := s.inst.(backend.Pauser)
	if !ok {
		return fmt.Errorf("this sandbox's backend cannot pause")
	}
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	if s.hasExited() {
		return fmt.Errorf("the sandbox has exited")
	}
	if s.paused.Load() == pause {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, pauseTimeout)
	defer cancel()
	var err error
	if pause {
		err = p.Pause(ctx)
	} else {
		err = p.Resume(ctx)
	}
	if err != nil {
		return err
	}
	s.paused.Store(pause)
	s.agent.setPaused(pause)
	s.log.Info("sandbox paused or resumed", "paused", pause)
	return nil
}

func (s *server) isPaused() bool { return s.paused.Load() }

// hasExited reports whether the sandbox has ended.
func (s *server) hasExited() bool {
	select {
	case <-s.doneCh:
		return true
	default:
		return false
	}
}

func (s *server) pauseRoutes(mux *http.ServeMux) {
	handle := func(pause bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := s.setPaused(r.Context(), pause); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			writeJSON(w, s.status())
		}
	}
	mux.HandleFunc("POST /pause", handle(true))
	mux.HandleFunc("POST /resume", handle(false))
}

// checkpointTimeout bounds one checkpoint (its memory is written to disk).
const checkpointTimeout = 5 * time.Minute

// checkpoint writes the sandbox's memory and processes into dir (see
// backend.Checkpointer) and leaves it paused, as a pause does: resume
// lets it go on.
func (s *server) checkpoint(ctx context.Context, dir string) error {
	c, ok := s.inst.(backend.Checkpointer)
	if !ok {
		return fmt.Errorf("this sandbox's backend takes no memory snapshots")
	}
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return fmt.Errorf("checkpoint directory %q must be an absolute, clean path", dir)
	}
	s.pauseMu.Lock()
	defer s.pauseMu.Unlock()
	if s.hasExited() {
		return fmt.Errorf("the sandbox has exited")
	}
	if s.paused.Load() {
		return fmt.Errorf("the sandbox is paused; resume it before a memory snapshot")
	}
	ctx, cancel := context.WithTimeout(ctx, checkpointTimeout)
	defer cancel()
	// Probes would fail while the agent is suspended.
	s.agent.setPaused(true)
	if err := c.Checkpoint(ctx, dir); err != nil {
		s.agent.setPaused(false)
		return err
	}
	s.paused.Store(true)
	s.log.Info("sandbox checkpointed; paused until resumed", "dir", dir)
	return nil
}

func (s *server) checkpointRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /checkpoint", func(w http.ResponseWriter, r *http.Request) {
		if err := s.checkpoint(r.Context(), r.URL.Query().Get("dir")); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		writeJSON(w, s.status())
	})
}
