package cli

import (
	"testing"

	"github.com/agentkernel/agentkernel/internal/testutil"
)

// TestDependencies keeps the daemon's parts out of the CLI: it talks to the
// daemon only through pkg/client.
func TestDependencies(t *testing.T) {
	banned := []string{"internal/api", "internal/httpapi", "internal/daemon", "internal/sandbox", "internal/store", "internal/backend",
		"internal/supervisor", "internal/agent", "internal/oci", "internal/image", "modernc.org/sqlite"}
	for _, dep := range testutil.Deps(t, ".") {
		for _, b := range banned {
			if testutil.Imports(dep, b) {
				t.Errorf("the CLI imports %s", dep)
			}
		}
	}
}
