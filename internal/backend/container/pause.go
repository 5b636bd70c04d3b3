package container

import (
	"context"
	"fmt"
)

// Pause freezes every process of the container through the runtime's
// pause (the cgroup freezer, v1 or v2, for runc; the sandbox's own
// scheduler for runsc). The processes keep their memory and use no CPU.
func (in *instance) Pause(ctx context.Context) error {
	return in.pauseOrResume(ctx, "pause")
}

// Resume thaws what Pause froze; the processes go on where they were.
func (in *instance) Resume(ctx context.Context) error {
	return in.pauseOrResume(ctx, "resume")
}

func (in *instance) pauseOrResume(ctx context.Context, verb string) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return fmt.Errorf("sandbox %s: %s: it has stopped", in.spec.Name, verb)
	}
	if _, err := in.b.runtime().command(ctx, verb, in.spec.ID); err != nil {
		return fmt.Errorf("sandbox %s: %s: %w", in.spec.Name, verb, err)
	}
	return nil
}
