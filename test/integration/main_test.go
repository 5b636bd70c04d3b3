package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/agentkernel/agentkernel/internal/testutil"
)

var (
	// skipReason, when set, skips every test (see requireEnv).
	skipReason string
	// akBin and agentBin are the binaries TestMain built; the agent sits
	// next to agentkernel, where the daemon looks for it.
	akBin, agentBin string
	// shared is the environment (home, daemon) most tests use.
	shared *env
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	flag.Parse()
	if skipReason = prerequisites(); skipReason != "" {
		fmt.Fprintf(os.Stderr, "integration: SKIPPING every test: %s\n", skipReason)
		return m.Run()
	}
	binDir, err := os.MkdirTemp("", "akit-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	if err := build(binDir); err != nil {
		fmt.Fprintln(os.Stderr, "integration: building the binaries:", err)
		return 1
	}
	shared, err = newHome()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		shared.dumpLogs(os.Stderr)
	}
	if problems := shared.teardown(); len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "integration: the shared home was not left clean:")
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "  -", p)
		}
		if code == 0 {
			shared.dumpLogs(os.Stderr)
		}
		code = 1
	}
	shared.removeHome()
	return code
}

// prerequisites returns why the tests cannot run here, or "".
func prerequisites() string {
	switch {
	case testing.Short():
		return "-short was given (these tests start real sandboxes)"
	case runtime.GOOS != "linux":
		return "sandboxes need Linux"
	case os.Geteuid() != 0:
		return "they need root (run `sudo go test ./test/integration`)"
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "runc is not in PATH (install it with scripts/setup.sh)"
	}
	return ""
}

// requireEnv skips t when the package cannot run here, naming the reason.
func requireEnv(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip("integration: " + skipReason)
	}
}

// build compiles both binaries statically into dir, as `make build` does.
func build(dir string) (err error) {
	akBin, agentBin, err = testutil.BuildBinaries(dir)
	return err
}
