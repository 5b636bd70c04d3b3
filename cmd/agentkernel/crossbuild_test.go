package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// goTool is the go command on PATH, else the one of this test's toolchain.
// Only -short skips the tests that need it: a missing go command fails them.
func goTool(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary for other systems (-short)")
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command on PATH or in %s", filepath.Dir(p))
	}
	return p
}

// goRun runs the go command in this package's directory for goos/goarch
// (the build cache is shared with the test's own build) and fails with its
// output.
func goRun(t *testing.T, goos, goarch string, args ...string) {
	t.Helper()
	// Stop short of the test's -timeout, so that a cold build cache gets
	// this message rather than go test's panic.
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-20*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, goTool(t), args...)
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("GOOS=%s GOARCH=%s go %s: not done before the test's deadline; with a cold build cache each target compiles every dependency, give go test a longer -timeout (make test has 40m)\n%s", goos, goarch, strings.Join(args, " "), out)
	}
	if err != nil {
		t.Fatalf("GOOS=%s GOARCH=%s go %s: %v\n%s", goos, goarch, strings.Join(args, " "), err, out)
	}
	t.Logf("GOOS=%s GOARCH=%s go %s: %v", goos, goarch, strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
}

// TestCrossBuild keeps the CLI building where its users are: as a client on
// macOS (amd64, arm64) and, with AGENTKERNEL_CROSSBUILD=all (make
// crossbuild), whole on Linux arm64 (this test's own build is the host's).
// Off Linux the daemon's commands are stand-ins (daemon_other.go). With a
// warm build cache each build is a few seconds; the first run compiles every
// dependency once per target (minutes on 2 cores: Linux arm64, the whole
// daemon, the longest, which is why CI leaves it to make crossbuild).
func TestCrossBuild(t *testing.T) {
	targets := []string{"darwin/amd64", "darwin/arm64"}
	if os.Getenv("AGENTKERNEL_CROSSBUILD") == "all" {
		targets = append(targets, "linux/arm64")
	} else {
		t.Log("linux/arm64 is built only with AGENTKERNEL_CROSSBUILD=all (make crossbuild)")
	}
	for _, target := range targets {
		goos, goarch, _ := strings.Cut(target, "/")
		t.Run(goos+"_"+goarch, func(t *testing.T) {
			goRun(t, goos, goarch, "build", "-o", filepath.Join(t.TempDir(), "agentkernel"), ".")
		})
	}
	// vet checks this package and the SDK (pkg/...) as macOS compiles
	// them, tests included. The other packages of the client have tests that
	// run a daemon in-process, which is Linux-only.
	t.Run("vet_darwin_arm64", func(t *testing.T) {
		goRun(t, "darwin", "arm64", "vet", ".", "github.com/agentkernel/agentkernel/pkg/...")
	})
}

// TestClientOnly runs the build macOS gets (daemon_other.go, forced on
// Linux with the tag clientonly): the daemon's commands and a command
// without a daemon address say that the daemon runs on Linux only and how
// to reach one, and with AGENTKERNEL_BASE_URL it is a working client.
func TestClientOnly(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "agentkernel")
	goRun(t, runtime.GOOS, runtime.GOARCH, "build", "-tags", "clientonly", "-o", bin, ".")
	home := t.TempDir()
	run := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append([]string{"HOME=" + home, "AGENTKERNEL_HOME=" + home, "PATH=" + os.Getenv("PATH")}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, args := range [][]string{{"serve", "--api-key", "0123456789abcdef"}, {"supervise", "x"}, {"setup"}, {"list"}} {
		out, err := run(nil, args...)
		if err == nil || !strings.Contains(out, daemonLinuxOnly) {
			t.Errorf("%s: %v, %q; want a failure that says %q", args, err, out, daemonLinuxOnly)
		}
	}
	if ents, _ := os.ReadDir(home); len(ents) > 0 {
		t.Errorf("the client-only build wrote %v into its home (started a daemon?)", ents)
	}

	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "GET" || r.URL.Path != "/sandboxes" {
			http.NotFound(w, r)
			return
		}
		auth = r.Header.Get("Authorization")
		json.NewEncoder(w).Encode(api.Envelope{Success: true, Data: []api.SandboxInfo{{Name: "dev", Status: "running", Backend: "container"}}})
	}))
	defer srv.Close()
	out, err := run([]string{"AGENTKERNEL_BASE_URL=" + srv.URL, "AGENTKERNEL_API_KEY=k3y"}, "list")
	if err != nil || !strings.Contains(out, "dev") || !strings.Contains(out, "running") {
		t.Errorf("list with AGENTKERNEL_BASE_URL: %v, %q", err, out)
	}
	if auth != "Bearer k3y" {
		t.Errorf("Authorization %q, want the key of AGENTKERNEL_API_KEY", auth)
	}
	if out, err := run(nil, "--url", srv.URL, "list", "--json"); err != nil || !strings.Contains(out, `"dev"`) {
		t.Errorf("list --url: %v, %q", err, out)
	}
}
