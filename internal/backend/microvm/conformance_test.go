package microvm

import (
	"testing"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/backend/backendtest"
)

// TestConformance runs the backend contract's suite on QEMU (TCG here; the
// agent's own suite is left to the container backend and the in-process
// tests, it adds minutes under emulation and nothing the VM changes).
func TestConformance(t *testing.T) {
	requireVM(t)
	b := newBackend(t, Options{})
	backendtest.Run(t, backendtest.Env{
		Backend: b,
		Spec:    func(t *testing.T) *backend.Spec { return newSpec(t) },
	})
}
