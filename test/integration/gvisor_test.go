package integration

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/test/conformance"
)

// The gvisor backend: runsc as the OCI runtime, with the container
// backend's bundle, agent and gateway attachment. scripts/runsc.sh builds
// runsc into /var/cache/agentkernel/runsc (scripts/setup.sh runs it);
// these tests skip when runsc is in neither that cache nor PATH.

func requireRunsc(t *testing.T) {
	t.Helper()
	requireEnv(t)
	if m, _ := filepath.Glob("/var/cache/agentkernel/runsc/*/runsc"); len(m) > 0 {
		return
	}
	if _, err := exec.LookPath("runsc"); err != nil {
		t.Skip("runsc is not installed: run scripts/runsc.sh (it builds runsc into /var/cache/agentkernel/runsc)")
	}
}

func TestGVisorConformance(t *testing.T) {
	requireRunsc(t)
	e := newEnv(t)
	e.ok(t, "sandbox", "list")
	conformance.Run(t, e.client(t), conformance.Options{Backend: "gvisor", Prefix: "gv-"})
}

// TestGVisorNetwork runs the network suite on gVisor: its own netstack
// (runsc --network=sandbox) drives the tap eth0 of the netns the
// supervisor prepared, whose only peer is the sandbox's gateway.
func TestGVisorNetwork(t *testing.T) {
	requireRunsc(t)
	for _, bin := range []string{"ip", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (apt: iproute2, curl)", bin)
		}
	}
	w := newNetWorld(t)
	conformance.RunNetwork(t, w.e.client(t), conformance.NetworkWorld{
		Backend: "gvisor", Prefix: "gvn-", ProbeDir: w.probeDir, SecretValue: "sk-gv-" + strconv.Itoa(os.Getpid()),
		Leaks: w.leaks.Load,
		Dial: func(addr string) (c net.Conn, err error) {
			w.inWorld(t, func() { c, err = net.DialTimeout("tcp", addr, time.Second) })
			return c, err
		},
	})
}

// TestGVisorInfo checks that the sandbox runs on gVisor's kernel and that
// doctor and GET /backends name the probed platform.
func TestGVisorInfo(t *testing.T) {
	requireRunsc(t)
	e := newEnv(t)
	e.create(t, "gv-info", "--backend", "gvisor")
	if out := e.ok(t, "exec", "gv-info", "--", "cat", "/proc/version").stdout; !strings.Contains(out, "gvisor") {
		t.Errorf("/proc/version %q: not gVisor", out)
	}
	doc := e.ak(t, "doctor").stdout
	if !strings.Contains(doc, "gvisor: platform") || !strings.Contains(doc, "gvisor: isolation gvisor, pause yes") ||
		!(strings.Contains(doc, "platform systrap") || strings.Contains(doc, "platform ptrace")) {
		t.Errorf("doctor does not report gvisor and its platform:\n%s", doc)
	}
}

// TestGVisorPooled runs the suite on a gvisor sandbox claimed from a warm
// pool.
func TestGVisorPooled(t *testing.T) {
	requireRunsc(t)
	e := newEnv(t)
	e.ok(t, "sandbox", "list")
	conformance.RunPooled(t, e.client(t), conformance.Options{Backend: "gvisor", Prefix: "gvp-"})
}
