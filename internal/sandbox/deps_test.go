package sandbox

import (
	"testing"

	"github.com/agentkernel/agentkernel/internal/testutil"
)

// TestDependencies: the domain does not import its edges (the HTTP API,
// the CLI, the daemon that wires it) nor a backend implementation; it
// knows backends only through internal/backend.
func TestDependencies(t *testing.T) {
	banned := []string{"internal/httpapi", "internal/api", "internal/cli", "internal/daemon", "pkg/client",
		"internal/backend/container", "internal/backend/microvm", "github.com/coder/websocket"}
	for _, dep := range testutil.Deps(t, ".") {
		for _, b := range banned {
			if testutil.Imports(dep, b) {
				t.Errorf("internal/sandbox imports %s", dep)
			}
		}
	}
}
