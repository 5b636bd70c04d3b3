package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/agentkernel/agentkernel/internal/backend/container"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// hostRuntime is what the daemon and the supervisors of one home share:
// the image store and the backends built over it.
type hostRuntime struct {
	images    *image.Store
	container *container.Backend
}

func newHostRuntime(l paths.Layout, log *slog.Logger) (*hostRuntime, error) {
	imgs, err := image.Open(l.ImagesDir(), image.Options{})
	if err != nil {
		return nil, err
	}
	return &hostRuntime{
		images: imgs,
		container: container.New(container.Options{
			RuntimeRoot: l.RuncRoot(),
			Images:      imgs,
			Logger:      log,
		}),
	}, nil
}

// backends returns the backends by name.
func (h *hostRuntime) backends() map[string]sandbox.Backend {
	return map[string]sandbox.Backend{h.container.Name(): h.container}
}

// doctor reports on every backend.
func (h *hostRuntime) doctor(ctx context.Context) []api.DoctorCheck {
	return h.container.Probe(ctx)
}

// Supervise is the hidden `agentkernel supervise DIR` role: it runs one
// sandbox's supervisor until the sandbox ends. ready is the pipe the daemon
// reads the start result from (fd 3).
func Supervise(ctx context.Context, dir string, ready supervisorReady, log *slog.Logger) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	spec, err := sandbox.ReadSpec(dir)
	if err != nil {
		return err
	}
	l, err := paths.Default()
	if err != nil {
		return err
	}
	log = log.With("sandbox", spec.Name, "id", spec.ID)
	h, err := newHostRuntime(l, log)
	if err != nil {
		return err
	}
	b, ok := h.backends()[spec.Backend]
	if !ok {
		return fmt.Errorf("sandbox %s: unknown backend %q", spec.Name, spec.Backend)
	}
	return runSupervisor(ctx, dir, ready, log, func(ctx context.Context) (supervisorInstance, error) {
		return b.Start(ctx, spec)
	})
}
