package container

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Memory snapshots (gvisor flavor): `runsc checkpoint` and `runsc restore`.
//
// gVisor cannot save a socket bound on the host, and the agent's listener
// is one (--host-uds=create), so a checkpoint goes:
//
//  1. `runsc exec ID agent --control suspend`: the agent closes its
//     listener and its sessions (internal/agent, ControlSocket);
//  2. `runsc pause ID`, so that the files stop changing too;
//  3. `runsc checkpoint --leave-running --image-path DIR ID`, which leaves
//     a paused sandbox paused;
//
// and the sandbox stays paused, agent suspended, until Resume, which runs
// `runsc resume` and `runsc exec ID agent --control listen`. A restore is
// `runsc restore --detach --image-path DIR` of the new sandbox's bundle
// under its own ID, then the same `--control listen`.
//
// runc (the default flavor) has no memory snapshots here: it would need
// CRIU, whose `criu check` fails on the development host (see docs/API.md).

// restoredFile, in StateDir, marks a sandbox whose Spec.Restore was
// used: its later Starts boot afresh.
const restoredFile = "restored"

// agentControl runs the agent's --control request in sandbox id.
func (r *runc) agentControl(ctx context.Context, id, request string) error {
	_, err := r.command(ctx, "exec", id, oci.AgentBinary, "--control", request)
	return err
}

// restore is run for a checkpoint: the sandbox of bundle continues the
// processes saved in imageDir as container id.
func (r *runc) restore(ctx context.Context, id, bundle, pidFile, imageDir string, console *os.File, flags ...string) error {
	args := append(flags, "restore", "--detach", "--image-path", imageDir, "--bundle", bundle, "--pid-file", pidFile, id)
	return r.runArgs(ctx, args, console)
}

// Checkpoint writes the sandbox's memory and processes into dir and
// leaves it paused (see backend.Checkpointer).
func (g gvisorInstance) Checkpoint(ctx context.Context, dir string) (retErr error) {
	in := g.in
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return fmt.Errorf("sandbox %s: checkpoint: it has stopped", in.spec.Name)
	}
	rt := in.b.runtime()
	if err := rt.agentControl(ctx, in.spec.ID, "suspend"); err != nil {
		return fmt.Errorf("sandbox %s: suspending the agent's host socket: %w", in.spec.Name, err)
	}
	in.agentSuspended = true
	defer func() {
		if retErr != nil {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
			defer cancel()
			if err := in.resumeLocked(uctx); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("resuming after the failed checkpoint: %w", err))
			}
		}
	}()
	if _, err := rt.command(ctx, "pause", in.spec.ID); err != nil {
		return fmt.Errorf("sandbox %s: pause: %w", in.spec.Name, err)
	}
	in.runtimePaused = true
	if _, err := rt.command(ctx, "checkpoint", "--leave-running", "--image-path", dir, in.spec.ID); err != nil {
		return fmt.Errorf("sandbox %s: checkpoint: %w", in.spec.Name, err)
	}
	return nil
}

// resumeLocked resumes the runtime if it is paused and lets a suspended
// agent listen again. The caller holds in.mu.
func (in *instance) resumeLocked(ctx context.Context) error {
	rt := in.b.runtime()
	if in.runtimePaused {
		if _, err := rt.command(ctx, "resume", in.spec.ID); err != nil {
			return fmt.Errorf("sandbox %s: resume: %w", in.spec.Name, err)
		}
		in.runtimePaused = false
	}
	if in.agentSuspended {
		if err := rt.agentControl(ctx, in.spec.ID, "listen"); err != nil {
			return fmt.Errorf("sandbox %s: letting the agent listen again: %w", in.spec.Name, err)
		}
		in.agentSuspended = false
	}
	return nil
}

// restoreFrom returns the checkpoint directory the next Start restores
// from, or "" to boot afresh.
func (b *Backend) restoreFrom(s *backend.Spec) (string, error) {
	if s.Restore == nil {
		return "", nil
	}
	if _, err := os.Stat(filepath.Join(s.StateDir, restoredFile)); err == nil {
		return "", nil
	}
	if b.opts.Flavor != GVisor {
		return "", fmt.Errorf("%w: the %s backend takes no memory snapshots: it would need CRIU (runc checkpoint), "+
			"which agentkernel does not drive (see docs/API.md, Snapshots)", errdefs.ErrNotImplemented, b.Name())
	}
	fi, err := os.Stat(filepath.Join(s.Restore.ImageDir, "checkpoint.img"))
	if err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: checkpoint %s: no checkpoint.img (%v)", errdefs.ErrFailedPrecondition, s.Restore.ImageDir, err)
	}
	return s.Restore.ImageDir, nil
}

// markRestored records that the sandbox was restored (see restoredFile).
func markRestored(stateDir string) error {
	err := os.WriteFile(filepath.Join(stateDir, restoredFile), nil, 0o600)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// Resume thaws a paused sandbox; after a checkpoint it also lets the agent
// listen again.
func (g gvisorInstance) Resume(ctx context.Context) error {
	in := g.in
	in.mu.Lock()
	if in.agentSuspended || in.runtimePaused {
		defer in.mu.Unlock()
		return in.resumeLocked(ctx)
	}
	in.mu.Unlock()
	return in.Resume(ctx)
}

// afterRestore lets the restored sandbox's agent listen (it was suspended
// when the checkpoint was taken) and marks the sandbox restored.
func (in *instance) afterRestore(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, restoreListenTimeout)
	defer cancel()
	if err := in.b.runtime().agentControl(ctx, in.spec.ID, "listen"); err != nil {
		return fmt.Errorf("sandbox %s: the restored agent does not listen: %w", in.spec.Name, err)
	}
	return markRestored(in.spec.StateDir)
}

// restoreListenTimeout bounds the restored agent's return to listening.
const restoreListenTimeout = time.Minute
