package opencodeproxy

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// fakeSandboxes stands for the sandbox manager. Its one sandbox's
// "published port" is an httptest server, bound at create and started by
// StartDetached, that checks the server password and then serves what the
// test's handler does.
type fakeSandboxes struct {
	t       testing.TB
	handler http.Handler

	mu      sync.Mutex
	images  map[string]bool
	secrets []string
	sb      *fakeSandbox
	creates int
	removes int
	// createGate, when set, holds CreateSandbox until it is closed.
	createGate chan struct{}
	// exitAtStart makes the server "exit" at once, with this output.
	exitAtStart string
	lastCreate  api.CreateSandboxRequest
	lastExec    sandbox.ExecOptions
	all         []*fakeSandbox
}

type fakeSandbox struct {
	info     api.SandboxInfo
	srv      *httptest.Server
	password string
	started  bool
	n        int // 1 for the first sandbox created, 2 for the next…
}

func newFake(t testing.TB, h http.Handler) *fakeSandboxes {
	f := &fakeSandboxes{t: t, handler: h,
		images:  map[string]bool{agent.Image(): true},
		secrets: []string{"ANTHROPIC_API_KEY"}}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, sb := range f.all {
			sb.srv.Close()
		}
	})
	return f
}

func (f *fakeSandboxes) CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error) {
	f.mu.Lock()
	gate := f.createGate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return api.SandboxInfo{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sb != nil && f.sb.info.Name == req.Name {
		return api.SandboxInfo{}, fmt.Errorf("%w: sandbox %q", errdefs.ErrAlreadyExists, req.Name)
	}
	f.creates++
	f.lastCreate = req
	sb := &fakeSandbox{n: f.creates, info: api.SandboxInfo{Name: req.Name, UUID: uuid(), Status: api.StatusRunning,
		Labels: req.Labels, Image: req.Image, MemoryMB: req.MemoryMB, VCPUs: req.VCPUs}}
	sb.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, pw, ok := r.BasicAuth(); !ok || u != "opencode" || pw != sb.password {
			http.Error(w, "wrong server password", http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Sandbox", fmt.Sprint(sb.n))
		if r.URL.Path == healthPath {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintln(w, `{"healthy":true}`)
			return
		}
		f.handler.ServeHTTP(w, r)
	}))
	f.sb = sb
	f.all = append(f.all, sb)
	return sb.info, nil
}

// add puts a sandbox of that name in place, as a user could.
func (f *fakeSandboxes) add(labels map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb := &fakeSandbox{info: api.SandboxInfo{Name: SandboxName, UUID: uuid(), Status: api.StatusRunning, Labels: labels}}
	sb.srv = httptest.NewUnstartedServer(http.NotFoundHandler())
	f.sb = sb
	f.all = append(f.all, sb)
}

func (f *fakeSandboxes) GetSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sb == nil || f.sb.info.Name != name {
		return api.SandboxInfo{}, fmt.Errorf("%w: sandbox %q", errdefs.ErrNotFound, name)
	}
	return f.sb.info, nil
}

func (f *fakeSandboxes) RemoveSandbox(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sb == nil || f.sb.info.Name != name {
		return fmt.Errorf("%w: sandbox %q", errdefs.ErrNotFound, name)
	}
	f.removes++
	sb := f.sb
	f.sb = nil
	sb.srv.CloseClientConnections()
	sb.srv.Listener.Close()
	return nil
}

// fail marks the sandbox failed and closes its port, as when its init dies.
func (f *fakeSandboxes) fail() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sb.info.Status = "failed"
	f.sb.srv.CloseClientConnections()
	f.sb.srv.Listener.Close()
}

// crash closes the server's port while the sandbox runs on.
func (f *fakeSandboxes) crash() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sb.srv.CloseClientConnections()
	f.sb.srv.Listener.Close()
}

func (f *fakeSandboxes) StartDetached(ctx context.Context, name string, req sandbox.ExecOptions) (api.DetachedCommand, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sb == nil || f.sb.info.Name != name {
		return api.DetachedCommand{}, fmt.Errorf("%w: sandbox %q", errdefs.ErrNotFound, name)
	}
	f.lastExec = req
	for _, kv := range req.Env {
		if v, ok := strings.CutPrefix(kv, "OPENCODE_SERVER_PASSWORD="); ok {
			f.sb.password = v
		}
	}
	if f.exitAtStart == "" {
		f.sb.srv.Start()
		f.sb.started = true
	}
	return api.DetachedCommand{ID: "cmd1", Sandbox: name, Command: req.Argv, Status: api.DetachedRunning}, nil
}

func (f *fakeSandboxes) GetDetached(ctx context.Context, name, id string) (api.DetachedCommand, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exitAtStart != "" {
		code := 1
		return api.DetachedCommand{ID: id, Status: api.DetachedFailed, ExitCode: &code}, nil
	}
	return api.DetachedCommand{ID: id, Status: api.DetachedRunning}, nil
}

func (f *fakeSandboxes) DetachedLogs(ctx context.Context, name, id string) (api.DetachedLogs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.DetachedLogs{Stderr: f.exitAtStart}, nil
}

func (f *fakeSandboxes) SandboxNetwork(ctx context.Context, name string) (api.NetworkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sb == nil || f.sb.info.Name != name {
		return api.NetworkInfo{}, fmt.Errorf("%w: sandbox %q", errdefs.ErrNotFound, name)
	}
	return api.NetworkInfo{Sandbox: name, Mode: "gateway", Running: true, Published: []api.PublishedPort{
		{SandboxPort: 22, Address: "127.0.0.1:1"},
		{SandboxPort: serverPort, Address: f.sb.srv.Listener.Addr().String()},
	}}, nil
}

func (f *fakeSandboxes) InspectImage(ctx context.Context, name string) (api.ImageDetails, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.images[name] {
		return api.ImageDetails{}, fmt.Errorf("%w: image %q", errdefs.ErrNotFound, name)
	}
	return api.ImageDetails{}, nil
}

func (f *fakeSandboxes) ListSecrets(ctx context.Context) ([]api.SecretInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.SecretInfo
	for _, s := range f.secrets {
		out = append(out, api.SecretInfo{Name: s})
	}
	return out, nil
}

func (f *fakeSandboxes) counts() (creates, removes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.creates, f.removes
}

func uuid() string {
	var b [16]byte
	rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
