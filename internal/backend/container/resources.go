package container

import (
	"context"
	"fmt"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/oci"
)

var _ backend.ResourceUpdater = (*instance)(nil)

// UpdateResources changes the running container's memory, CPU and pids
// limits (runc update). Lowering memory below what the container uses
// fails, and the limits stay as they were.
func (in *instance) UpdateResources(ctx context.Context, r backend.Resources) error {
	res, err := oci.Resources(r)
	if err != nil {
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return fmt.Errorf("sandbox %s: updating its limits: it has stopped", in.spec.Name)
	}
	if err := in.b.runtime().update(ctx, in.spec.ID, res); err != nil {
		return fmt.Errorf("sandbox %s: updating its limits: %w", in.spec.Name, err)
	}
	return nil
}
