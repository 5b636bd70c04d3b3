// Package faultpoint is a TEST-ONLY pause point for the fault suite
// (test/fault): it lets a test stop the daemon at a moment it cannot hit
// from outside (between two steps of a create, a removal or a snapshot) and
// kill a process there.
//
// It does nothing unless the daemon's environment sets
// AGENTKERNEL_TEST_FAULTPOINT to the point's name. Then Hit creates the
// marker file <AGENTKERNEL_TEST_FAULTPOINT_DIR>/<name> and waits until the
// test removes it (or ctx ends, or a minute passes), so the test knows the
// daemon is there and can kill the daemon, a supervisor or the runtime, then
// let the daemon go on. No production configuration sets these variables.
package faultpoint

import (
	"context"
	"os"
	"path/filepath"
	"time"
)

// Env names the point to pause at; DirEnv the directory of the marker.
const (
	Env    = "AGENTKERNEL_TEST_FAULTPOINT"
	DirEnv = "AGENTKERNEL_TEST_FAULTPOINT_DIR"
)

// maxPause bounds a pause whose test went away.
const maxPause = time.Minute

// The points.
const (
	CreateRecorded = "create-recorded" // the store row and state directory exist; no supervisor yet
	CreateSpawned  = "create-spawned"  // the supervisor runs the sandbox; the daemon has not connected to the agent
	RemoveRecorded = "remove-recorded" // the store row is gone; the background teardown has not begun
	SnapshotDiffed = "snapshot-diffed" // the snapshot's layer is made; the image is not published
)

var point, dir = os.Getenv(Env), os.Getenv(DirEnv)

// Hit pauses at the named point if the environment asks for it.
func Hit(ctx context.Context, name string) {
	if point == "" || point != name || dir == "" {
		return
	}
	marker := filepath.Join(dir, name)
	if err := os.WriteFile(marker, []byte(name+"\n"), 0o600); err != nil {
		return
	}
	deadline := time.After(maxPause)
	for {
		if _, err := os.Stat(marker); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
