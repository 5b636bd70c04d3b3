package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// busyboxBase imports a tiny image: a static busybox with the applets the
// tests use, and a file the Dockerfile deletes.
func busyboxBase(t *testing.T, name string) { busyboxBaseIn(t, shared, name) }

// busyboxBaseIn is busyboxBase in e's daemon.
func busyboxBaseIn(t *testing.T, e *env, name string) {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no static /bin/busybox (scripts/setup.sh installs busybox-static)")
	}
	dir := t.TempDir()
	for _, d := range []string{"bin", "tmp", "etc", "root", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "echo", "id", "ls", "rm", "mkdir", "pwd", "stat", "grep"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "bin/gone"), []byte("doomed"), 0o644)
	os.WriteFile(filepath.Join(dir, "data/old"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	e.ok(t, "image", "import", name, dir)
	t.Cleanup(func() { e.ak(t, "image", "rm", name) })
}

const testDockerfile = `# syntax=docker/dockerfile:1
ARG BASE=it-df-base
FROM ${BASE}
ENV APP_HOME=/app MSG="two words"
WORKDIR $APP_HOME
COPY data.txt ./
COPY sub /app/sub/
ARG GREETING=hello
RUN echo "$GREETING from $(pwd)" > out.txt && rm /bin/gone && \
    mkdir -p /opq && echo x > /opq/new
USER 1000
LABEL k=v
EXPOSE 8080
CMD ["/bin/sh", "-c", "cat /app/out.txt"]
`

func TestDockerfileBuild(t *testing.T) {
	requireEnv(t)
	busyboxBase(t, "it-df-base")
	ctxDir := t.TempDir()
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(testDockerfile), 0o644)
	os.WriteFile(filepath.Join(ctxDir, "data.txt"), []byte("data\n"), 0o644)
	os.MkdirAll(filepath.Join(ctxDir, "sub/deep"), 0o755)
	os.WriteFile(filepath.Join(ctxDir, "sub/deep/f"), []byte("deep\n"), 0o640)

	// First build, through the CLI.
	r := shared.akLong(t, 5*time.Minute, "build", "-t", "it-df:1", ctxDir)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "it-df:1" {
		t.Fatalf("build: %v", r)
	}
	t.Cleanup(func() { shared.ak(t, "image", "rm", "it-df:1") })
	r = shared.ak(t, "run", "--image", "it-df:1", "--", "/bin/sh", "-c",
		`cat out.txt data.txt; id -u; echo "$MSG"; pwd; ls /bin/gone 2>&1 || echo gone; cat /opq/new; stat -c %u:%a /app/data.txt /app/sub/deep/f`)
	want := "hello from /app\ndata\n1000\ntwo words\n/app\nls: /bin/gone: No such file or directory\ngone\nx\n0:644\n0:640\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("running the built image: want %q\n%v", want, r)
	}
	// -i is --image, as upstream's run has it.
	if r := shared.ak(t, "run", "-i", "it-df:1", "--", "cat", "out.txt"); r.code != 0 || r.stdout != "hello from /app\n" {
		t.Errorf("run -i IMAGE -- CMD: %v", r)
	}

	// Second build, through the SDK to see its steps: every layer step
	// comes from the cache and no sandbox runs.
	c := shared.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stages []string
	start := time.Now()
	_, err := c.BuildImage(ctx, api.BuildImageRequest{Name: "it-df:1", Dockerfile: &api.DockerfileSource{Context: ctxDir}},
		func(p api.BuildProgress) error {
			stages = append(stages, p.Stage+" "+p.Message)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	cached, ran := 0, 0
	for _, s := range stages {
		switch {
		case strings.HasPrefix(s, api.BuildStageCached+" "):
			cached++
		case strings.HasPrefix(s, api.BuildStageStep+" "), strings.HasPrefix(s, api.BuildStageOutput+" "):
			ran++
		}
	}
	if cached != 3 || ran != 0 {
		t.Errorf("second build: %d cached, %d run steps, want 3 and 0:\n%s", cached, ran, strings.Join(stages, "\n"))
	}
	log, _ := os.ReadFile(filepath.Join(shared.home, "daemon.log"))
	if lines := strings.Split(strings.TrimSpace(string(log)), "\n"); !strings.Contains(lastContaining(lines, "built an image from a Dockerfile"), "sandboxes=0") {
		t.Errorf("second build ran sandboxes: %s", lastContaining(lines, "built an image from a Dockerfile"))
	}
	t.Logf("cached rebuild took %v", time.Since(start))

	// Changing a copied file misses the cache from that step on.
	os.WriteFile(filepath.Join(ctxDir, "data.txt"), []byte("data2\n"), 0o644)
	stages = nil
	if _, err := c.BuildImage(ctx, api.BuildImageRequest{Name: "it-df:2", Dockerfile: &api.DockerfileSource{Context: ctxDir}},
		func(p api.BuildProgress) error { stages = append(stages, p.Stage); return nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.ak(t, "image", "rm", "it-df:2") })
	if n := strings.Count(strings.Join(stages, ","), api.BuildStageStep); n != 3 {
		t.Errorf("after changing data.txt %d steps ran, want 3 (COPY data.txt, COPY sub, RUN): %v", n, stages)
	}

	// Unsupported instructions fail naming them.
	for df, name := range map[string]string{
		"FROM it-df-base\nHEALTHCHECK CMD true\n":         "HEALTHCHECK",
		"FROM it-df-base\nADD https://example.com/x /x\n": "ADD of a URL",
		"FROM it-df-base\nRUN exit 3\n":                   "exit code 3",
		"FROM it-df-base\nFROM it-df-base\n":              "multi-stage",
		"FROM host\nRUN true\n":                           "host image has no layers",
	} {
		os.WriteFile(filepath.Join(ctxDir, "Dockerfile.bad"), []byte(df), 0o644)
		r := shared.akLong(t, 2*time.Minute, "build", "-t", "it-df:bad", "-f", filepath.Join(ctxDir, "Dockerfile.bad"), ctxDir)
		if r.code == 0 || !strings.Contains(r.stderr, name) {
			t.Errorf("%q: want a failure naming %q\n%v", df, name, r)
		}
	}
}

func lastContaining(lines []string, s string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}

// TestSandboxCommit commits a sandbox's changes (a new file, a deleted
// one, a directory replaced: an opaque directory in the layer) and runs the result.
func TestSandboxCommit(t *testing.T) {
	requireEnv(t)
	busyboxBase(t, "it-commit-base")
	shared.create(t, "it-commit", "--image", "it-commit-base")
	t.Cleanup(func() { shared.ak(t, "sandbox", "remove", "it-commit") })
	shared.ok(t, "exec", "it-commit", "--", "/bin/sh", "-c",
		"echo kept > /root/note && rm /bin/gone && rm -r /data && mkdir /data && echo new > /data/only")
	r := shared.ok(t, "sandbox", "commit", "it-commit", "-t", "it-committed:1")
	if strings.TrimSpace(r.stdout) != "it-committed:1" {
		t.Fatalf("commit: %v", r)
	}
	t.Cleanup(func() { shared.ak(t, "image", "rm", "it-committed:1") })
	r = shared.ak(t, "run", "--image", "it-committed:1", "--", "/bin/sh", "-c", "cat /root/note; ls /data; ls /bin/gone 2>/dev/null || echo gone")
	if want := "kept\nonly\ngone\n"; r.code != 0 || r.stdout != want {
		t.Errorf("running the committed image: want %q\n%v", want, r)
	}
	// Host-image sandboxes have no layers to commit on.
	shared.create(t, "it-commit-host")
	t.Cleanup(func() { shared.ak(t, "sandbox", "remove", "it-commit-host") })
	r = shared.ak(t, "sandbox", "commit", "it-commit-host", "-t", "it-committed:host")
	if r.code == 0 || !strings.Contains(r.stderr, "host image") {
		t.Errorf("committing a host-image sandbox: %v", r)
	}
}
