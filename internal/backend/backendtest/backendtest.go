// Package backendtest is the conformance suite of the backend contract
// (internal/backend), run by each backend's own tests against the real
// runtime, without a daemon or supervisor: what every backend.Backend and
// backend.Instance must do, whatever isolates the sandbox. Semantics seen
// through the public API are test/conformance's; the agent's own are
// internal/agent/agenttest's, which Run can include.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/agent/agenttest"
	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Env is what the suite needs from a backend's tests.
type Env struct {
	Backend backend.Backend
	// Spec returns a new, valid spec for a sandbox of its own (a fresh ID
	// and state directory) on the host image; the suite may change it
	// before starting it. Its Env must contain GREETING=hi.
	Spec func(t *testing.T) *backend.Spec
	// AgentSuite also runs the guest agent's suite (agenttest) through
	// the instance's DialAgent; slow on emulated VMs.
	AgentSuite bool
}

// Run runs every test of the suite.
func Run(t *testing.T, env Env) {
	t.Run("Identity", func(t *testing.T) { testIdentity(t, env) })
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, env) })
	t.Run("RestartKeepsFiles", func(t *testing.T) { testRestart(t, env) })
	t.Run("InvalidSpec", func(t *testing.T) { testInvalidSpec(t, env) })
	t.Run("CleanupIdempotent", func(t *testing.T) { testCleanup(t, env) })
	if env.AgentSuite {
		t.Run("Agent", func(t *testing.T) { testAgent(t, env) })
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// start starts s and stops it when the test ends.
func start(t *testing.T, env Env, s *backend.Spec) backend.Instance {
	t.Helper()
	inst, err := env.Backend.Start(ctxT(t), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		inst.Stop(context.Background())
		env.Backend.Cleanup(context.Background(), s)
		if d, ok := env.Backend.(backend.Destroyer); ok {
			d.Destroy(context.Background(), s)
		}
	})
	return inst
}

// Client connects to inst's agent; the client is closed when the test
// ends.
func Client(t *testing.T, inst backend.Instance) *agentproto.Client {
	t.Helper()
	conn, err := inst.DialAgent(ctxT(t))
	if err != nil {
		t.Fatalf("DialAgent: %v", err)
	}
	c, err := agentproto.NewClient(conn)
	if err != nil {
		t.Fatalf("agent hello: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Sh runs script with /bin/sh in inst and returns its stdout, failing the
// test on a non-zero exit.
func Sh(t *testing.T, inst backend.Instance, script string) string {
	t.Helper()
	c := Client(t, inst)
	p, err := c.Exec(ctxT(t), agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c", script}})
	if err != nil {
		t.Fatalf("exec %q: %v", script, err)
	}
	defer p.Close()
	var out, errb bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(&out, p.Stdout()) }()
	go func() { defer wg.Done(); io.Copy(&errb, p.Stderr()) }()
	wg.Wait()
	st, err := p.Wait()
	if err != nil || st.Code != 0 {
		t.Fatalf("%q: exit %d (%v), stderr %q", script, st.Code, err, errb.String())
	}
	return out.String()
}

// stop stops inst as the supervisor does: the agent's graceful shutdown
// (which syncs the filesystems), then Stop, as the contract asks.
func stop(t *testing.T, inst backend.Instance) {
	t.Helper()
	if err := Client(t, inst).Shutdown(ctxT(t)); err != nil {
		t.Errorf("agent shutdown: %v", err)
	}
	if err := inst.Stop(ctxT(t)); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func testIdentity(t *testing.T, env Env) {
	if env.Backend.Name() == "" {
		t.Error("Name is empty")
	}
	if env.Backend.Capabilities().Isolation == "" {
		t.Error("Capabilities().Isolation is empty")
	}
}

// testLifecycle: a started sandbox runs the spec's environment and host
// name, has not exited, answers its agent; Stop ends it (Exited closes)
// and is idempotent; the agent is then unreachable.
func testLifecycle(t *testing.T, env Env) {
	s := env.Spec(t)
	s.Hostname = "conformance"
	inst := start(t, env, s)
	select {
	case <-inst.Exited():
		t.Fatalf("exited right after Start: %v", inst.ExitError())
	default:
	}
	if err := Client(t, inst).Ping(ctxT(t)); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if got := Sh(t, inst, "echo $GREETING; hostname"); got != "hi\nconformance\n" {
		t.Errorf("environment and host name: %q", got)
	}
	stop(t, inst)
	select {
	case <-inst.Exited():
	case <-time.After(time.Minute):
		t.Fatal("Exited not closed a minute after Stop")
	}
	if err := inst.Stop(ctxT(t)); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if conn, err := inst.DialAgent(ctxT(t)); err == nil {
		conn.Close()
		t.Error("DialAgent after Stop succeeded")
	} else if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("DialAgent after Stop: %v, want class unavailable", err)
	}
}

// testRestart: files written under /root survive a stop and a new Start
// of the same spec; /tmp does not.
func testRestart(t *testing.T, env Env) {
	s := env.Spec(t)
	inst := start(t, env, s)
	Sh(t, inst, "echo kept > /root/kept && echo gone > /tmp/gone")
	stop(t, inst)
	inst = start(t, env, s)
	if got := Sh(t, inst, "cat /root/kept; ls /tmp/gone 2>/dev/null || echo no-tmp"); got != "kept\nno-tmp\n" {
		t.Errorf("after restart: %q", got)
	}
}

// testInvalidSpec: a spec the contract refuses fails Start with an
// invalid-argument error and leaves its state directory as it was.
func testInvalidSpec(t *testing.T, env Env) {
	for name, mutate := range map[string]func(*backend.Spec){
		"id":      func(s *backend.Spec) { s.ID = "../escape" },
		"mount":   func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: "/", Path: "/host"}} },
		"network": func(s *backend.Spec) { s.Security.Network = "host" },
		"env":     func(s *backend.Spec) { s.Env = append(s.Env, "NOT A VARIABLE") },
	} {
		s := env.Spec(t)
		before := entries(t, s.StateDir)
		mutate(s)
		inst, err := env.Backend.Start(ctxT(t), s)
		if err == nil {
			inst.Stop(context.Background())
			t.Errorf("%s: Start accepted an invalid spec", name)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrPermissionDenied) {
			t.Errorf("%s: %v, want class invalid_argument or permission_denied", name, err)
		}
		if after := entries(t, s.StateDir); after != before {
			t.Errorf("%s: the refused start changed the state directory: %q -> %q", name, before, after)
		}
	}
}

// testCleanup: Cleanup is fine on a sandbox that never started, twice.
func testCleanup(t *testing.T, env Env) {
	s := env.Spec(t)
	for i := range 2 {
		if err := env.Backend.Cleanup(ctxT(t), s); err != nil {
			t.Fatalf("Cleanup %d of a never-started sandbox: %v", i+1, err)
		}
	}
}

func testAgent(t *testing.T, env Env) {
	s := env.Spec(t)
	inst := start(t, env, s)
	Sh(t, inst, "mkdir -p /tmp/agenttest")
	agenttest.Run(t, agenttest.Env{
		Client: func(t *testing.T) *agentproto.Client { return Client(t, inst) },
		Dir:    "/tmp/agenttest",
	})
}

func entries(t *testing.T, dir string) string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		return "error: " + err.Error()
	}
	names := make([]string, len(es))
	for i, e := range es {
		names[i] = e.Name()
	}
	return strings.Join(names, ",")
}
