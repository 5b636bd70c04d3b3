package opencodeproxy

import (
	"testing"

	"github.com/agentkernel/agentkernel/internal/testutil"
)

// TestDependencies: the proxy knows sandboxes only through its Sandboxes
// interface (and internal/sandbox's exec options): it imports neither the
// HTTP API that serves it, nor the daemon that wires it, nor a backend.
func TestDependencies(t *testing.T) {
	banned := []string{"internal/httpapi", "internal/cli", "internal/daemon", "pkg/client",
		"internal/backend/container", "internal/backend/microvm"}
	for _, dep := range testutil.Deps(t, ".") {
		for _, b := range banned {
			if testutil.Imports(dep, b) {
				t.Errorf("internal/opencodeproxy imports %s", dep)
			}
		}
	}
}
