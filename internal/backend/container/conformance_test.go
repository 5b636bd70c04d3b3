package container

import (
	"testing"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/backend/backendtest"
)

// TestConformance runs the backend contract's suite, and the guest agent's
// through it, on runc.
func TestConformance(t *testing.T) {
	runConformance(t, newEnv(t))
}

// runConformance runs the backend contract's suite on e's backend.
func runConformance(t *testing.T, e *env) {
	backendtest.Run(t, backendtest.Env{
		Backend: e.b,
		Spec: func(t *testing.T) *backend.Spec {
			s := e.spec(t)
			s.Env = []string{"PATH=/usr/bin:/bin", "GREETING=hi"}
			return s
		},
		AgentSuite: true,
	})
}
