package httpapi

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/internal/events"
	"github.com/agentkernel/agentkernel/internal/metrics"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// fakeService stands in for the daemon (internal/sandbox's Manager) in
// these tests: an in-memory Service whose processes run small scripts
// named by argv[0] (see fakeProc.script). The real daemon, with runc and the
// guest agent, is exercised by the lead's integration tests; this fake lets
// the HTTP layer and the SDK be tested end to end with real HTTP, SSE and
// WebSocket connections.
//
// Special sandbox names: "err-<code>" makes GetSandbox fail with that
// errdefs class; "panic" makes GetSandbox panic.
type fakeService struct {
	mu        sync.Mutex
	sandboxes map[string]*fakeSandbox
	images    map[string]api.ImageInfo
	removed   []string    // names passed to RemoveSandbox, in order
	procs     []*fakeProc // every process started
	nextPID   int
	// gate is closed by a test to let the "gate" script finish.
	gate     chan struct{}
	pools    []api.PoolInfo // what SetPool was given
	eventLog []api.Event    // recorded events (emit)
	broker   *events.Broker
	// createErr, when set, fails CreateSandbox.
	createErr error
	// pullCancelled is set when a "slow" PullImage saw its ctx end.
	pullCancelled bool
}

type fakeSandbox struct {
	info     api.SandboxInfo
	files    map[string][]byte
	dirs     map[string]bool
	detached map[string]*api.DetachedCommand
}

func newFake() *fakeService {
	return &fakeService{
		sandboxes: map[string]*fakeSandbox{},
		images:    map[string]api.ImageInfo{},
		gate:      make(chan struct{}),
		nextPID:   100,
	}
}

func notFound(what string) error { return fmt.Errorf("%s: %w", what, errdefs.ErrNotFound) }

func (f *fakeService) sandbox(name string) (*fakeSandbox, error) {
	sb, ok := f.sandboxes[name]
	if !ok {
		return nil, notFound(fmt.Sprintf("sandbox %q", name))
	}
	return sb, nil
}

func (f *fakeService) CreateSandbox(_ context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.createErr != nil {
		return api.SandboxInfo{}, f.createErr
	}
	if _, ok := f.sandboxes[req.Name]; ok {
		return api.SandboxInfo{}, fmt.Errorf("sandbox %q: %w", req.Name, errdefs.ErrAlreadyExists)
	}
	status := api.StatusRunning
	if req.Start != nil && !*req.Start {
		status = api.StatusStopped
	}
	info := api.SandboxInfo{
		Name: req.Name, UUID: fmt.Sprintf("00000000-0000-0000-0000-%012d", len(f.sandboxes)+1),
		Status: status, Backend: "fake", Image: req.Image, Profile: req.Profile, VCPUs: req.VCPUs,
		MemoryMB: req.MemoryMB, Labels: req.Labels, CreatedAt: time.Unix(1700000000, 0).UTC(), Ephemeral: req.Ephemeral,
	}
	f.sandboxes[req.Name] = &fakeSandbox{info: info, files: map[string][]byte{}, dirs: map[string]bool{"/": true, "/tmp": true}, detached: map[string]*api.DetachedCommand{}}
	return info, nil
}

func (f *fakeService) ListSandboxes(context.Context) ([]api.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.SandboxInfo
	for _, sb := range f.sandboxes {
		out = append(out, sb.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeService) GetSandbox(_ context.Context, name string) (api.SandboxInfo, error) {
	if name == "panic" {
		panic("fake: GetSandbox panics on purpose")
	}
	if code, ok := strings.CutPrefix(name, "err-"); ok {
		if class := errdefs.FromCode(code); class != nil {
			return api.SandboxInfo{}, fmt.Errorf("fake failure for %q: %w", name, class)
		}
		return api.SandboxInfo{}, fmt.Errorf("fake unclassified failure for %q", name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	return sb.info, nil
}

func (f *fakeService) GetSandboxByUUID(_ context.Context, uuid string) (api.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, sb := range f.sandboxes {
		if sb.info.UUID == uuid {
			return sb.info, nil
		}
	}
	return api.SandboxInfo{}, notFound("sandbox with uuid " + uuid)
}

func (f *fakeService) setStatus(name, status string) (api.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	sb.info.Status = status
	return sb.info, nil
}

func (f *fakeService) StartSandbox(_ context.Context, name string) (api.SandboxInfo, error) {
	return f.setStatus(name, api.StatusRunning)
}

func (f *fakeService) StopSandbox(_ context.Context, name string) (api.SandboxInfo, error) {
	return f.setStatus(name, api.StatusStopped)
}

func (f *fakeService) PauseSandbox(_ context.Context, name string) (api.SandboxInfo, error) {
	return f.setStatus(name, api.StatusPaused)
}

func (f *fakeService) ResumeSandbox(_ context.Context, name string) (api.SandboxInfo, error) {
	return f.setStatus(name, api.StatusRunning)
}

func (f *fakeService) RemoveSandbox(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, name)
	if _, err := f.sandbox(name); err != nil {
		return err
	}
	delete(f.sandboxes, name)
	return nil
}

func (f *fakeService) ExtendSandbox(_ context.Context, name string, by time.Duration) (api.SandboxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	exp := sb.info.CreatedAt.Add(by)
	sb.info.ExpiresAt = &exp
	return sb.info, nil
}

func (f *fakeService) SandboxLogs(_ context.Context, name string) ([]api.LogEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return nil, err
	}
	return []api.LogEvent{{Timestamp: sb.info.CreatedAt, Event: "sandbox_created", Sandbox: name}}, nil
}

func (f *fakeService) Exec(_ context.Context, name string, opts sandbox.ExecOptions) (sandbox.Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return nil, err
	}
	if sb.info.Status != api.StatusRunning {
		return nil, fmt.Errorf("sandbox %q is %s: %w", name, sb.info.Status, errdefs.ErrFailedPrecondition)
	}
	if len(opts.Argv) == 0 { // as the sandbox manager says for an image without Entrypoint or Cmd
		return nil, fmt.Errorf("%w: no command given, and image %q has no Entrypoint or Cmd", errdefs.ErrInvalidArgument, sb.info.Image)
	}
	f.nextPID++
	p := newFakeProc(f.nextPID, opts, f.gate)
	f.procs = append(f.procs, p)
	return p, nil
}

func (f *fakeService) procCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.procs)
}

func (f *fakeService) lastProc() *fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.procs) == 0 {
		return nil
	}
	return f.procs[len(f.procs)-1]
}

func (f *fakeService) StartDetached(_ context.Context, name string, opts sandbox.ExecOptions) (api.DetachedCommand, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return api.DetachedCommand{}, err
	}
	id := "cmd" + strconv.Itoa(len(sb.detached)+1)
	cmd := &api.DetachedCommand{ID: id, Sandbox: name, Command: opts.Argv, PID: 42, Status: api.DetachedRunning, StartedAt: time.Unix(1700000000, 0).UTC()}
	sb.detached[id] = cmd
	return *cmd, nil
}

func (f *fakeService) ListDetached(_ context.Context, name string) ([]api.DetachedCommand, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return nil, err
	}
	var out []api.DetachedCommand
	for _, c := range sb.detached {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (f *fakeService) detached(name, id string) (*api.DetachedCommand, error) {
	sb, err := f.sandbox(name)
	if err != nil {
		return nil, err
	}
	c, ok := sb.detached[id]
	if !ok {
		return nil, notFound("command " + id)
	}
	return c, nil
}

func (f *fakeService) GetDetached(_ context.Context, name, id string) (api.DetachedCommand, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.detached(name, id)
	if err != nil {
		return api.DetachedCommand{}, err
	}
	return *c, nil
}

func (f *fakeService) DetachedLogs(_ context.Context, name, id string) (api.DetachedLogs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.detached(name, id)
	if err != nil {
		return api.DetachedLogs{}, err
	}
	return api.DetachedLogs{Stdout: "out of " + c.ID, Stderr: "err of " + c.ID}, nil
}

func (f *fakeService) KillDetached(_ context.Context, name, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.detached(name, id)
	if err != nil {
		return err
	}
	code := 137
	c.Status, c.ExitCode = api.DetachedFailed, &code
	return nil
}

func (f *fakeService) ReadFile(_ context.Context, name, p string, max int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return nil, err
	}
	b, ok := sb.files[p]
	if !ok {
		return nil, notFound(p)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w", p, errdefs.ErrTooLarge)
	}
	return bytes.Clone(b), nil
}

func (f *fakeService) WriteFile(_ context.Context, name, p string, mode uint32, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return err
	}
	if !sb.dirs[path.Dir(p)] {
		return notFound("directory " + path.Dir(p))
	}
	_ = mode
	sb.files[p] = data
	return nil
}

func (f *fakeService) DeleteFile(_ context.Context, name, p string, recursive bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return err
	}
	if _, ok := sb.files[p]; ok {
		delete(sb.files, p)
		return nil
	}
	if !sb.dirs[p] {
		return notFound(p)
	}
	if !recursive {
		return fmt.Errorf("%s is a directory: %w", p, errdefs.ErrFailedPrecondition)
	}
	for k := range sb.files {
		if strings.HasPrefix(k, p+"/") {
			delete(sb.files, k)
		}
	}
	for k := range sb.dirs {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(sb.dirs, k)
		}
	}
	return nil
}

func (f *fakeService) ListDir(_ context.Context, name, p string) ([]api.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return nil, err
	}
	if !sb.dirs[p] {
		return nil, notFound(p)
	}
	var out []api.FileInfo
	for k, v := range sb.files {
		if path.Dir(k) == p {
			out = append(out, api.FileInfo{Name: path.Base(k), Size: int64(len(v)), Mode: "-rw-r--r--"})
		}
	}
	for k := range sb.dirs {
		if k != "/" && path.Dir(k) == p {
			out = append(out, api.FileInfo{Name: path.Base(k), Mode: "drwxr-xr-x", IsDir: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeService) Mkdir(_ context.Context, name, p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return err
	}
	for d := p; d != "/"; d = path.Dir(d) {
		sb.dirs[d] = true
	}
	return nil
}

func (f *fakeService) TarOut(_ context.Context, name, p string, w io.Writer) error {
	f.mu.Lock()
	sb, err := f.sandbox(name)
	var names []string
	files := map[string][]byte{}
	if err == nil {
		for k, v := range sb.files {
			if k == p || strings.HasPrefix(k, strings.TrimSuffix(p, "/")+"/") {
				names = append(names, k)
				files[k] = v
			}
		}
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return notFound(p)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, k := range names {
		rel := strings.TrimPrefix(strings.TrimPrefix(k, p), "/")
		if rel == "" {
			rel = path.Base(k)
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Mode: 0o644, Size: int64(len(files[k])), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(files[k]); err != nil {
			return err
		}
	}
	return tw.Close()
}

func (f *fakeService) TarIn(_ context.Context, name, dir string, r io.Reader) error {
	tr := tar.NewReader(r)
	got := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the tar stream: %w", err)
		}
		p, err := SandboxPath(path.Join(dir, h.Name))
		if err != nil {
			return err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("reading the tar stream: %w", err)
		}
		got[p] = b
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sb, err := f.sandbox(name)
	if err != nil {
		return err
	}
	for p, b := range got {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			sb.dirs[d] = true
		}
		sb.files[p] = b
	}
	return nil
}

func (f *fakeService) ListImages(context.Context) ([]api.ImageInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.ImageInfo
	for _, im := range f.images {
		out = append(out, im)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeService) ImportImage(_ context.Context, req api.ImportImageRequest) (api.ImageInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	im := api.ImageInfo{Name: req.Name, ID: "sha256:" + strings.Repeat("ab", 32), Size: 1234, Source: req.Path, CreatedAt: time.Unix(1700000000, 0).UTC()}
	f.images[req.Name] = im
	return im, nil
}

func (f *fakeService) RemoveImage(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.images[name]; !ok {
		return notFound("image " + name)
	}
	delete(f.images, name)
	return nil
}

// emit records and publishes an event, as the Manager does.
func (f *fakeService) emit(sandbox, name string) api.Event {
	f.mu.Lock()
	ev := api.Event{ID: int64(len(f.eventLog) + 1), Time: time.Now(), Event: name, Sandbox: sandbox, SandboxUUID: "uuid-" + sandbox}
	f.eventLog = append(f.eventLog, ev)
	if f.broker == nil {
		f.broker = events.NewBroker()
	}
	b := f.broker
	f.mu.Unlock()
	b.Publish(ev)
	return ev
}

func (f *fakeService) EventsAfter(_ context.Context, after int64, limit int) ([]api.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Event
	for _, ev := range f.eventLog {
		if ev.ID > after && len(out) < limit {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (f *fakeService) LastEventID(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int64(len(f.eventLog)), nil
}

func (f *fakeService) SubscribeEvents(n int) (<-chan api.Event, func()) {
	f.mu.Lock()
	if f.broker == nil {
		f.broker = events.NewBroker()
	}
	b := f.broker
	f.mu.Unlock()
	return b.Subscribe(n)
}

// MetricsHandler serves a real registry with one observed exec.
func (f *fakeService) MetricsHandler() http.Handler {
	m := metrics.New(metrics.Sources{})
	m.Observe("exec", "container", time.Millisecond, nil)
	return m.Handler()
}

func (f *fakeService) ListPools(context.Context) []api.PoolInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.pools)
}

func (f *fakeService) SetPool(_ context.Context, req api.SetPoolRequest) (api.PoolInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Image == "missing" {
		return api.PoolInfo{}, fmt.Errorf("%w: image missing", errdefs.ErrNotFound)
	}
	p := api.PoolInfo{PoolKey: req.PoolKey, Size: req.Size}
	f.pools = append(f.pools, p)
	return p, nil
}

func (f *fakeService) Backends(context.Context) []api.BackendInfo {
	return []api.BackendInfo{{Name: "container", Default: true, Isolation: "container", Pause: true, NetworkGateway: true}}
}

func (f *fakeService) Doctor(context.Context) []api.DoctorCheck {
	return []api.DoctorCheck{{Name: "runc", OK: true, Detail: "fake"}, {Name: "kvm", OK: false, Detail: "fake", Fix: "none"}}
}
