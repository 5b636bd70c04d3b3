package build

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// fakeSandboxes stands in for the sandbox manager in unit tests of the
// Dockerfile semantics: a step's "sandbox" is a directory, RUN records its
// argv and options and writes a file named after its step into the upper
// directory (as a command would), and COPY unpacks the tar the builder
// sends. The real manager runs in test/integration's Dockerfile tests.
type fakeSandboxes struct {
	root     string
	mu       sync.Mutex
	n        int
	sbx      map[string]*fakeSandbox
	runs     []fakeRun
	networks []*api.NetworkPolicy // of each sandbox created
}

type fakeSandbox struct {
	info  api.SandboxInfo
	upper string
	spec  *backend.Spec
}

type fakeRun struct {
	Sandbox string
	Opts    sandbox.ExecOptions
}

func newFakeSandboxes(t *testing.T) *fakeSandboxes {
	return &fakeSandboxes{root: t.TempDir(), sbx: map[string]*fakeSandbox{}}
}

func (f *fakeSandboxes) get(name string) (*fakeSandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sbx[name]
	if !ok {
		return nil, fmt.Errorf("%w: sandbox %s", errdefs.ErrNotFound, name)
	}
	return s, nil
}

func (f *fakeSandboxes) CreateSandbox(_ context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.networks = append(f.networks, req.Network)
	upper := filepath.Join(f.root, fmt.Sprint(f.n))
	if err := os.Mkdir(upper, 0o755); err != nil {
		return api.SandboxInfo{}, err
	}
	info := api.SandboxInfo{Name: req.Name, Image: req.Image, Status: api.StatusRunning, Labels: req.Labels}
	f.sbx[req.Name] = &fakeSandbox{info: info, upper: upper, spec: &backend.Spec{Name: req.Name}}
	return info, nil
}

func (f *fakeSandboxes) GetSandbox(_ context.Context, name string) (api.SandboxInfo, error) {
	s, err := f.get(name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	return s.info, nil
}

func (f *fakeSandboxes) StopSandbox(_ context.Context, name string) (api.SandboxInfo, error) {
	return f.GetSandbox(context.Background(), name)
}

func (f *fakeSandboxes) RemoveSandbox(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.sbx, name)
	return nil
}

func (f *fakeSandboxes) Mkdir(_ context.Context, name, p string) error {
	s, err := f.get(name)
	if err != nil {
		return err
	}
	mkdirOwned(s.upper, filepath.Join(s.upper, p))
	return nil
}

func (f *fakeSandboxes) TarIn(_ context.Context, name, dir string, r io.Reader) error {
	s, err := f.get(name)
	if err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(s.upper, dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			mkdirOwned(s.upper, dst)
		case tar.TypeReg:
			mkdirOwned(s.upper, filepath.Dir(dst))
			b, _ := io.ReadAll(tr)
			if err := writeOwned(dst, b); err != nil {
				return err
			}
		}
	}
}

func (f *fakeSandboxes) Exec(_ context.Context, name string, opts sandbox.ExecOptions) (sandbox.Process, error) {
	s, err := f.get(name)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.runs = append(f.runs, fakeRun{Sandbox: name, Opts: opts})
	n := len(f.runs)
	f.mu.Unlock()
	if err := writeOwned(filepath.Join(s.upper, fmt.Sprintf("run-%d", n)), []byte(strings.Join(opts.Argv, " "))); err != nil {
		return nil, err
	}
	code := 0
	if slices.Contains(opts.Argv, "exit 3") {
		code = 3
	}
	return &fakeProcess{out: "ran " + strings.Join(opts.Argv, " ") + "\n", code: code}, nil
}

func (f *fakeSandboxes) SandboxChanges(_ context.Context, name string) (backend.Changes, *backend.Spec, error) {
	s, err := f.get(name)
	if err != nil {
		return backend.Changes{}, nil, err
	}
	return backend.Changes{UpperDir: s.upper}, s.spec, nil
}

// mappedRoot is the host uid of root in a sandbox (oci.DefaultHostID):
// what a sandbox's writes are owned by, as the layer differ expects.
const mappedRoot = 100000

func writeOwned(p string, b []byte) error {
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return err
	}
	return os.Lchown(p, mappedRoot, mappedRoot)
}

// mkdirOwned makes dir and its missing parents below top, owned by the
// mapped root.
func mkdirOwned(top, dir string) {
	os.MkdirAll(dir, 0o755)
	for d := dir; d != top && strings.HasPrefix(d, top); d = filepath.Dir(d) {
		os.Lchown(d, mappedRoot, mappedRoot)
	}
}

type fakeProcess struct {
	out  string
	code int
}

func (p *fakeProcess) PID() int                    { return 1 }
func (p *fakeProcess) Stdin() io.WriteCloser       { return nopWriteCloser{io.Discard} }
func (p *fakeProcess) Stdout() io.Reader           { return strings.NewReader(p.out) }
func (p *fakeProcess) Stderr() io.Reader           { return strings.NewReader("") }
func (p *fakeProcess) Resize(uint16, uint16) error { return nil }
func (p *fakeProcess) Signal(syscall.Signal) error { return nil }
func (p *fakeProcess) Close() error                { return nil }
func (p *fakeProcess) Wait() (sandbox.ExitStatus, error) {
	return sandbox.ExitStatus{Code: p.code}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

var _ Sandboxes = (*fakeSandboxes)(nil)

// newFakeBuilder is a Builder over a fresh store holding image base:1 and
// a fakeSandboxes.
func newFakeBuilder(t *testing.T) (*Builder, *image.Store, *fakeSandboxes) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("layers keep owners: needs root")
	}
	home := t.TempDir()
	store, err := image.Open(filepath.Join(home, "images"), image.Options{})
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	os.MkdirAll(filepath.Join(base, "bin"), 0o755)
	if _, err := store.Import(context.Background(), "base:1", base); err != nil {
		t.Fatal(err)
	}
	fake := newFakeSandboxes(t)
	return New(Options{Home: home, Images: store, Sandboxes: fake}), store, fake
}

// TestDockerfileSemantics drives a Dockerfile through the builder with a
// fake sandbox manager: ARG and ENV expansion into RUN, the shell and exec
// forms, WORKDIR and USER passed to the step, COPY from the context, the
// image config, the step cache on a second build, and a failing RUN.
func TestDockerfileSemantics(t *testing.T) {
	b, store, fake := newFakeBuilder(t)
	ctxDir := t.TempDir()
	os.WriteFile(filepath.Join(ctxDir, "app.txt"), []byte("hello"), 0o644)
	df := `FROM base:1
ARG GREETING=hi
ENV WHO=world PATH=/bin
WORKDIR /srv
USER 1000
RUN echo $GREETING $WHO
RUN ["/bin/prog", "--flag"]
COPY app.txt /srv/app.txt
LABEL team=agents
CMD ["/bin/prog"]
`
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644)
	req := api.BuildImageRequest{Name: "semantics:1", Dockerfile: &api.DockerfileSource{Context: ctxDir, BuildArgs: map[string]string{"GREETING": "hello"}}}
	var stages []string
	info, err := b.BuildImage(context.Background(), req, func(p api.BuildProgress) { stages = append(stages, p.Stage) })
	if err != nil {
		t.Fatalf("build: %v (stages %v)", err, stages)
	}
	if info.Name != "semantics:1" {
		t.Errorf("info: %+v", info)
	}
	if len(fake.runs) != 2 {
		t.Fatalf("runs: %+v", fake.runs)
	}
	// Without a build policy every step is offline.
	for i, n := range fake.networks {
		if n == nil || n.Profile != "restrictive" || len(n.Allow)+len(n.Presets)+len(n.AllowCIDRs) != 0 {
			t.Errorf("step %d network: %+v, want restrictive with nothing allowed", i, n)
		}
	}
	r1, r2 := fake.runs[0].Opts, fake.runs[1].Opts
	if !slices.Equal(r1.Argv, []string{"/bin/sh", "-c", "echo $GREETING $WHO"}) || r1.Workdir != "/srv" || r1.User != "1000" ||
		!slices.Contains(r1.Env, "WHO=world") || !slices.Contains(r1.Env, "GREETING=hello") {
		t.Errorf("shell-form RUN: %+v", r1)
	}
	if !slices.Equal(r2.Argv, []string{"/bin/prog", "--flag"}) {
		t.Errorf("exec-form RUN: %+v", r2.Argv)
	}
	img, err := store.Get("semantics:1")
	if err != nil {
		t.Fatal(err)
	}
	if img.Config.WorkingDir != "/srv" || img.Config.User != "1000" || !slices.Equal(img.Config.Cmd, []string{"/bin/prog"}) ||
		img.Config.Labels["team"] != "agents" || !slices.Contains(img.Config.Env, "WHO=world") {
		t.Errorf("config: %+v", img.Config)
	}
	// The COPY step's layer holds the file.
	found := false
	for _, id := range img.LayerIDs {
		if b, err := os.ReadFile(filepath.Join(store.LayerDir(id), "srv", "app.txt")); err == nil && string(b) == "hello" {
			found = true
		}
	}
	if !found {
		t.Error("no layer holds /srv/app.txt")
	}
	// Again: every step from the cache, no sandbox.
	before := fake.n
	stages = nil
	if _, err := b.BuildImage(context.Background(), api.BuildImageRequest{Name: "semantics:2", Dockerfile: req.Dockerfile}, func(p api.BuildProgress) { stages = append(stages, p.Stage) }); err != nil {
		t.Fatal(err)
	}
	if fake.n != before || !slices.Contains(stages, api.BuildStageCached) || slices.Contains(stages, api.BuildStageStep) {
		t.Errorf("second build made %d sandboxes, stages %v", fake.n-before, stages)
	}
	// A failing RUN fails the build with its line and exit code.
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile.bad"), []byte("FROM base:1\nRUN exit 3\n"), 0o644)
	_, err = b.BuildImage(context.Background(), api.BuildImageRequest{Name: "bad:1",
		Dockerfile: &api.DockerfileSource{Context: ctxDir, Dockerfile: "Dockerfile.bad"}}, nil)
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "3") {
		t.Errorf("failing RUN: %v", err)
	}
	if _, err := store.Get("bad:1"); err == nil {
		t.Error("a failed build published its image")
	}
}

// TestBuildNetwork: a build's policy reaches every step as exactly what it
// names; a profile, address ranges or an unknown preset are refused before
// any step runs, and a Debian build takes no policy.
func TestBuildNetwork(t *testing.T) {
	b, _, fake := newFakeBuilder(t)
	ctxDir := t.TempDir()
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM base:1\nRUN npm install left-pad\n"), 0o644)
	src := &api.DockerfileSource{Context: ctxDir}
	for _, bad := range []*api.NetworkPolicy{
		{Profile: "permissive"}, {Profile: "moderate"}, {AllowCIDRs: []string{"0.0.0.0/0"}}, {Presets: []string{"nope"}},
	} {
		_, err := b.BuildImage(context.Background(), api.BuildImageRequest{Name: "n:1", Dockerfile: src, Network: bad}, nil)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if fake.n != 0 {
		t.Fatalf("refused builds ran %d steps", fake.n)
	}
	if _, err := b.BuildImage(context.Background(), api.BuildImageRequest{Name: "d:1", Debian: &api.DebianSource{Suite: "bookworm"},
		Network: &api.NetworkPolicy{Presets: []string{"npm"}}}, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("debian with a network: %v", err)
	}
	want := &api.NetworkPolicy{Allow: []string{"example.com"}, Presets: []string{"npm"}}
	if _, err := b.BuildImage(context.Background(), api.BuildImageRequest{Name: "n:1", Dockerfile: src, Network: want}, nil); err != nil {
		t.Fatal(err)
	}
	if len(fake.networks) != 1 {
		t.Fatalf("networks: %+v", fake.networks)
	}
	got := fake.networks[0]
	if got.Profile != "restrictive" || !slices.Equal(got.Allow, want.Allow) || !slices.Equal(got.Presets, want.Presets) {
		t.Errorf("step network %+v, want restrictive plus %+v", got, want)
	}
}
