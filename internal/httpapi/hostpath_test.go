package httpapi

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// recordingService is the fake service that also builds images, and keeps
// the requests that reached it, so a test can tell what the handler let
// through and with which paths.
type recordingService struct {
	*fakeService
	mu      sync.Mutex
	creates []api.CreateSandboxRequest
	imports []api.ImportImageRequest
	builds  []api.BuildImageRequest
}

func (r *recordingService) CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error) {
	r.mu.Lock()
	r.creates = append(r.creates, req)
	r.mu.Unlock()
	return r.fakeService.CreateSandbox(ctx, req)
}

func (r *recordingService) ImportImage(ctx context.Context, req api.ImportImageRequest) (api.ImageInfo, error) {
	r.mu.Lock()
	r.imports = append(r.imports, req)
	r.mu.Unlock()
	return r.fakeService.ImportImage(ctx, req)
}

func (r *recordingService) BuildImage(_ context.Context, req api.BuildImageRequest, _ func(api.BuildProgress)) (api.ImageInfo, error) {
	r.mu.Lock()
	r.builds = append(r.builds, req)
	r.mu.Unlock()
	return api.ImageInfo{Name: req.Name}, nil
}

// TestHostPathsOverTCP: a token holder cannot make the daemon read host
// paths (the finding: POST /images/import {"path":"/etc"} over TCP served
// the host's /etc/shadow), unless they lie under a configured directory,
// symlinks resolved; on the Unix socket every path may be named.
func TestHostPathsOverTCP(t *testing.T) {
	allowed := t.TempDir()
	outside := t.TempDir()
	if err := os.Mkdir(filepath.Join(allowed, "proj"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(allowed, "proj", "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink inside the allowed directory that leads out of it.
	if err := os.Symlink(outside, filepath.Join(allowed, "escape")); err != nil {
		t.Fatal(err)
	}
	allowedReal, _ := filepath.EvalSymlinks(allowed)

	const token = "tcp-token"
	rec := &recordingService{fakeService: newFake()}
	e := newEnvWith(t, rec, HandlerOptions{Token: token, HostPaths: []string{allowedReal}})
	auth := map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + token}
	post := func(path string, body any) (int, api.Envelope) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, out := e.do(t, "POST", path, b, auth)
		var env api.Envelope
		if err := json.Unmarshal(out, &env); err != nil {
			t.Fatalf("%s: %s", path, out)
		}
		return resp.StatusCode, env
	}
	denied := func(what string, status int, env api.Envelope) {
		t.Helper()
		if status != 403 || env.Success || env.Code != "permission_denied" || !strings.Contains(env.Error, "host_paths") {
			t.Fatalf("%s: want 403 naming host_paths, got %d %+v", what, status, env)
		}
	}

	for _, p := range []string{"/etc", "/", "/etc/../etc/shadow", filepath.Join(allowed, "escape"), allowed + "/../" + filepath.Base(outside)} {
		st, env := post("/images/import", api.ImportImageRequest{Name: "stolen", Path: p})
		denied("import "+p, st, env)
		st, env = post("/sandboxes", api.CreateSandboxRequest{Name: "mnt", Dirs: []string{p + ":/hostetc:ro"}})
		denied("dirs "+p, st, env)
	}
	st, env := post("/images/build", api.BuildImageRequest{Name: "b", Dockerfile: &api.DockerfileSource{Context: "/etc"}})
	denied("build context", st, env)
	st, env = post("/images/build", api.BuildImageRequest{Name: "b", Dockerfile: &api.DockerfileSource{Context: allowed, Dockerfile: "/etc/passwd"}})
	denied("dockerfile", st, env)
	st, env = post("/images/build", api.BuildImageRequest{Name: "b", Debian: &api.DebianSource{Suite: "bookworm", Mirror: "http://169.254.169.254/"}})
	if st != 403 || !strings.Contains(env.Error, "mirror") {
		t.Fatalf("debian mirror over TCP: %d %+v", st, env)
	}
	// A huge path is not echoed whole.
	st, env = post("/images/import", api.ImportImageRequest{Name: "x", Path: "/" + strings.Repeat("a", 4000)})
	if st != 403 || len(env.Error) > 600 {
		t.Fatalf("long path: %d, %d bytes of error", st, len(env.Error))
	}
	rec.mu.Lock()
	if len(rec.imports)+len(rec.creates)+len(rec.builds) != 0 {
		t.Fatalf("refused requests reached the service: %+v %+v %+v", rec.imports, rec.creates, rec.builds)
	}
	rec.mu.Unlock()

	// Under the allowed directory: accepted, with the resolved path.
	proj := filepath.Join(allowed, "proj")
	if st, env := post("/images/import", api.ImportImageRequest{Name: "ok", Path: proj}); st != 201 {
		t.Fatalf("allowed import: %d %+v", st, env)
	}
	if st, env := post("/sandboxes", api.CreateSandboxRequest{Name: "ok", Dirs: []string{proj + ":/work:ro"}}); st != 201 {
		t.Fatalf("allowed dir: %d %+v", st, env)
	}
	if st, env := post("/images/build", api.BuildImageRequest{Name: "b", Dockerfile: &api.DockerfileSource{Context: proj}}); st != 201 {
		t.Fatalf("allowed build: %d %+v", st, env)
	}
	if st, env := post("/images/import", api.ImportImageRequest{Name: "gone", Path: filepath.Join(allowed, "missing")}); st != 400 {
		t.Fatalf("missing path under the root: %d %+v", st, env)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	wantProj := filepath.Join(allowedReal, "proj")
	if len(rec.imports) != 1 || rec.imports[0].Path != wantProj {
		t.Fatalf("imports: %+v", rec.imports)
	}
	if len(rec.creates) != 1 || rec.creates[0].Dirs[0] != wantProj+":/work:ro" {
		t.Fatalf("creates: %+v", rec.creates)
	}
	if len(rec.builds) != 1 || rec.builds[0].Dockerfile.Context != wantProj || rec.builds[0].Dockerfile.Dockerfile != filepath.Join(wantProj, "Dockerfile") {
		t.Fatalf("builds: %+v", rec.builds[0].Dockerfile)
	}
}

// TestHostPathsOverSocket: without a token (the 0600 Unix socket, the
// daemon's own user) any absolute host path may be named, as before.
func TestHostPathsOverSocket(t *testing.T) {
	rec := &recordingService{fakeService: newFake()}
	e := newEnvWith(t, rec, HandlerOptions{})
	b, _ := json.Marshal(api.ImportImageRequest{Name: "etc", Path: "/etc"})
	if resp, out := e.do(t, "POST", "/images/import", b, jsonHeader); resp.StatusCode != 201 {
		t.Fatalf("import over the socket: %d %s", resp.StatusCode, out)
	}
	b, _ = json.Marshal(api.ImportImageRequest{Name: "rel", Path: "etc"})
	if resp, out := e.do(t, "POST", "/images/import", b, jsonHeader); resp.StatusCode != 400 {
		t.Fatalf("relative import path: %d %s", resp.StatusCode, out)
	}
}
