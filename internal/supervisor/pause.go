package supervisor

import (
	"context"
	"fmt"
	"net/http"
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
	select {
	case <-s.doneCh:
		return fmt.Errorf("the sandbox has exited")
	default:
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
