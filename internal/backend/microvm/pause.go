package microvm

import (
	"context"
	"fmt"
)

// Pause stops the VM's vCPUs (QMP stop): the guest, its processes and its
// memory stay as they are and use no CPU. The agent's stream stays open
// (its multiplexer sends no keepalives, see guestinit.OuterConfig).
func (in *instance) Pause(ctx context.Context) error { return in.qmpRun(ctx, "stop") }

// Resume lets the vCPUs run again (QMP cont).
func (in *instance) Resume(ctx context.Context) error { return in.qmpRun(ctx, "cont") }

func (in *instance) qmpRun(ctx context.Context, cmd string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return fmt.Errorf("sandbox %s: %s: the VM has stopped", in.spec.Name, cmd)
	}
	if _, err := in.qmp.run(ctx, cmd, nil); err != nil {
		return fmt.Errorf("sandbox %s: QMP %s: %w", in.spec.Name, cmd, err)
	}
	return nil
}
