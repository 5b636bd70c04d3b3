package cli

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the daemon's parts out of the CLI: it talks to the
// daemon only through pkg/client.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/agentkernel/agentkernel/"
	banned := []string{"internal/api", "internal/daemon", "internal/sandbox", "internal/store", "internal/backend",
		"internal/supervisor", "internal/agent", "internal/oci", "internal/image", "modernc.org/sqlite"}
	for _, dep := range strings.Fields(string(out)) {
		for _, b := range banned {
			p := b
			if strings.HasPrefix(b, "internal/") {
				p = mod + b
			}
			if dep == p || strings.HasPrefix(dep, p+"/") {
				t.Errorf("the CLI imports %s", dep)
			}
		}
	}
}
