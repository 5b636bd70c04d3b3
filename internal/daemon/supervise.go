package daemon

import (
	"context"
	"io"
	"log/slog"

	"github.com/agentkernel/agentkernel/internal/supervisor"
)

// supervisorReady is the write end of the daemon's ready pipe.
type supervisorReady = io.WriteCloser

// supervisorInstance is a started sandbox as the supervisor sees it.
type supervisorInstance = supervisor.Instance

func runSupervisor(ctx context.Context, dir string, ready supervisorReady, log *slog.Logger, start func(context.Context) (supervisorInstance, error)) error {
	return supervisor.Run(ctx, supervisor.Config{Dir: dir, Ready: ready, Logger: log, Start: start})
}
