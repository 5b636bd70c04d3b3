package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TestCleanupAfterKill starts sandboxes from a child "supervisor" process,
// kills it with SIGKILL (and, in one case, the container's init too), and
// checks that Cleanup from the spec alone leaves nothing behind.
func TestCleanupAfterKill(t *testing.T) {
	e := newEnv(t)
	img, err := e.images.Import(context.Background(), randomID(), filepath.Dir(probeBin))
	if err != nil {
		t.Fatal(err)
	}
	for _, killInit := range []bool{true, false} {
		t.Run(fmt.Sprintf("killInit=%v", killInit), func(t *testing.T) {
			s := e.spec(t)
			s.Rootfs = backend.RootfsSpec{Layers: img.Layers}
			sup, pid := e.startSupervisor(t, s)
			sup.Process.Kill()
			sup.Wait()
			if killInit {
				unix.Kill(pid, unix.SIGKILL)
			}
			if _, err := os.Stat(filepath.Join(e.opts.RuntimeRoot, s.ID)); err != nil {
				t.Fatalf("no runc state to clean up: %v", err)
			}
			if mps, _ := mountsUnder(filepath.Join(e.rootfsD, s.ID)); len(mps) == 0 {
				t.Fatal("no overlay mount to clean up")
			}
			if err := e.b.Cleanup(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			// The init was re-parented to this test (a subreaper): reap it.
			var ws unix.WaitStatus
			if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
				t.Errorf("reaping init %d: %v", pid, err)
			}
			if unix.Kill(pid, 0) == nil {
				t.Errorf("init %d still alive", pid)
			}
			e.assertClean(t, s)
			if err := e.b.Cleanup(context.Background(), s); err != nil {
				t.Errorf("second Cleanup: %v", err)
			}
		})
	}
	// Cleanup of a sandbox that never started is fine too.
	if err := e.b.Cleanup(context.Background(), e.spec(t)); err != nil {
		t.Errorf("Cleanup of a never-started sandbox: %v", err)
	}
}

// TestExit checks Exited and ExitError when the init dies on its own.
func TestExit(t *testing.T) {
	e := newEnv(t)
	s := e.spec(t)
	inst := e.start(t, s)
	pid, err := readPid(filepath.Join(s.StateDir, "init.pid"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-inst.Exited():
		t.Fatal("exited early")
	default:
	}
	unix.Kill(pid, unix.SIGKILL)
	select {
	case <-inst.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("Exited not closed after the init was killed")
	}
	if err := inst.ExitError(); err == nil || !strings.Contains(err.Error(), "signal killed") {
		t.Errorf("ExitError = %v", err)
	}
	if _, err := inst.DialAgent(context.Background()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("DialAgent after exit: %v", err)
	}
}

// TestStartFailures checks that a sandbox that cannot start reports why
// and leaves nothing behind.
func TestStartFailures(t *testing.T) {
	e := newEnv(t)
	s := e.spec(t)
	s.AgentPath = "/usr/bin/false" // exits at once
	_, err := e.b.Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "exited before its agent listened") {
		t.Errorf("Start with an agent that exits: %v", err)
	}
	e.assertClean(t, s)

	s = e.spec(t)
	s.AgentPath = "/usr/bin/sleep" // never listens ("sleep --listen" fails, too)
	s.Resources.MemoryMB = 1
	if _, err := e.b.Start(context.Background(), s); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Start with 1 MB: %v", err)
	}
	e.assertClean(t, s)

	s = e.spec(t)
	s.Rootfs = backend.RootfsSpec{}
	if _, err := e.b.Start(context.Background(), s); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Start without a rootfs: %v", err)
	}
	s = e.spec(t)
	s.Mounts = []backend.Mount{{HostPath: "/nonexistent", Path: "/x"}}
	if _, err := e.b.Start(context.Background(), s); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("Start with a missing mount source: %v", err)
	}
	// A deadline that runs out while waiting for the agent.
	s = e.spec(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := e.b.Start(ctx, s); err == nil {
		t.Error("Start with an expired context succeeded")
	}
	e.assertClean(t, s)

	bad := New(Options{Runtime: "/nonexistent/runc", RuntimeRoot: e.opts.RuntimeRoot, Images: e.images})
	if _, err := bad.Start(context.Background(), e.spec(t)); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Start without runc: %v", err)
	}
	// A runtime built without libseccomp is refused before anything runs.
	fake := filepath.Join(t.TempDir(), "runc")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'runc version 1.1.5'\necho 'spec: 1.0.2-dev'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	noSeccomp := New(Options{Runtime: fake, RuntimeRoot: e.opts.RuntimeRoot, RootfsDir: e.rootfsD, Images: e.images})
	if _, err := noSeccomp.Start(context.Background(), e.spec(t)); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "libseccomp") {
		t.Errorf("Start with a runtime without seccomp: %v", err)
	}
	// A rootfs directory the mapped root cannot reach is named.
	hidden := filepath.Join(t.TempDir(), "rootfs") // below a 0700 directory
	unreachable := New(Options{RuntimeRoot: e.opts.RuntimeRoot, RootfsDir: hidden, Images: e.images})
	if _, err := unreachable.Start(context.Background(), e.spec(t)); !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "o+x") {
		t.Errorf("Start with an unreachable rootfs directory: %v", err)
	}
}

// TestAgentSocketSymlink checks that DialAgent refuses a symlink planted in
// place of the agent socket.
func TestAgentSocketSymlink(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.sock")
	if err := os.Symlink("/run/some-host.sock", p); err != nil {
		t.Fatal(err)
	}
	if _, err := dialAgentSocket(context.Background(), p); !errors.Is(err, errdefs.ErrPermissionDenied) {
		t.Errorf("symlink: %v", err)
	}
}

func TestProbe(t *testing.T) {
	e := newEnv(t)
	checks := e.b.Probe(context.Background())
	if len(checks) < 6 {
		t.Fatalf("checks = %+v", checks)
	}
	for _, c := range checks {
		t.Logf("%s ok=%v %s", c.Name, c.OK, c.Detail)
		if !c.OK {
			t.Errorf("%s failed on the test host: %s (fix: %s)", c.Name, c.Detail, c.Fix)
		}
	}
	bad := New(Options{Runtime: "/nonexistent/runc", RuntimeRoot: e.opts.RuntimeRoot})
	failed := 0
	for _, c := range bad.Probe(context.Background()) {
		if !c.OK {
			failed++
			if c.Fix == "" {
				t.Errorf("%s failed without a fix", c.Name)
			}
		}
	}
	if failed < 2 {
		t.Errorf("missing runtime: %d failed checks", failed)
	}
}

func TestSeccompVersion(t *testing.T) {
	if v := seccompVersion("runc version 1.1.5\ncommit: x\nspec: 1.0.2-dev\ngo: go1.19\nlibseccomp: 2.5.4\n"); v != "2.5.4" {
		t.Errorf("got %q", v)
	}
	if v := seccompVersion("runc version 1.1.5\nspec: 1.0.2\n"); v != "" {
		t.Errorf("got %q for a runc without seccomp", v)
	}
}

// TestGracefulShutdown asks the agent to shut down, as the supervisor does
// before Stop: the init exits 0 and ExitError is nil.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t)
	inst := e.start(t, e.spec(t))
	c := client(t, inst)
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-inst.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the init did not exit after Shutdown")
	}
	if err := inst.ExitError(); err != nil {
		t.Errorf("ExitError after a clean shutdown = %v", err)
	}
}

// BenchmarkStartStop measures a warm Start (the host view's /etc copy
// already made) and the Stop after it.
func BenchmarkStartStop(b *testing.B) {
	requireRunc(b)
	home := b.TempDir()
	rootfsDir, err := os.MkdirTemp("", "ak-rootfs-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(rootfsDir)
	os.Chmod(rootfsDir, 0o711)
	be := New(Options{RuntimeRoot: filepath.Join(home, "runc"), RootfsDir: rootfsDir, CgroupParent: testCgroupParent, Images: sharedImages})
	sd := filepath.Join(home, "sandbox")
	if err := os.Mkdir(sd, 0o700); err != nil {
		b.Fatal(err)
	}
	s := &backend.Spec{ID: randomID(), StateDir: sd, AgentPath: agentBin, Rootfs: backend.RootfsSpec{Host: true}}
	var start time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		inst, err := be.Start(context.Background(), s)
		if err != nil {
			b.Fatal(err)
		}
		start += time.Since(t0)
		if err := inst.Stop(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(start.Milliseconds())/float64(b.N), "ms/start")
}
