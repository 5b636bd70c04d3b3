package integration

import (
	"testing"

	"github.com/agentkernel/agentkernel/test/conformance"
)

// TestConformance runs the shared sandbox semantics against the container
// backend, through the daemon's Unix socket.
func TestConformance(t *testing.T) {
	requireEnv(t)
	shared.ok(t, "sandbox", "list") // starts the daemon if no test did yet
	conformance.Run(t, shared.client(t), conformance.Options{Backend: "container", Prefix: "it-"})
}
