package backend

import (
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/testutil"
)

// TestDependencies keeps the backend contract, the backends and the bundle
// generator below the orchestrator: they may not import the sandbox
// manager, the store, the HTTP API, the supervisor, the daemon, SQLite or
// WebSocket (the layers issue found the bundle generator pulling in 285
// packages, the daemon's among them).
func TestDependencies(t *testing.T) {
	banned := []string{"internal/sandbox", "internal/store", "internal/api", "internal/httpapi",
		"internal/supervisor", "internal/daemon", "internal/cli", "pkg/client",
		"modernc.org/sqlite", "github.com/coder/websocket"}
	for _, pkg := range []string{"./...", "../oci"} {
		for _, dep := range testutil.Deps(t, pkg) {
			for _, b := range banned {
				if testutil.Imports(dep, b) {
					t.Errorf("%s imports %s", pkg, dep)
				}
			}
		}
	}
	// The contract itself is a leaf: nothing of agentkernel but the error
	// classes and the egress policy type it carries.
	allowed := map[string]bool{"internal/backend": true, "pkg/errdefs": true, "internal/netgw/policy": true}
	for _, dep := range testutil.Deps(t, ".") {
		if rel, ok := strings.CutPrefix(dep, testutil.Module+"/"); ok && !allowed[rel] {
			t.Errorf("internal/backend imports %s", dep)
		}
	}
}
