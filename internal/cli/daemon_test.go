package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/httpapi"
	"github.com/agentkernel/agentkernel/internal/safetar"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// hostService stands in for the daemon in the CLI's tests: the real HTTP
// API (internal/httpapi.NewHandler) serves it on a real Unix socket, and its
// "sandboxes" are directories on the host whose processes are real host
// processes, without isolation. It exists so that run's cleanup, exit
// codes, stdin, signals and cp can be tested through the real client; the
// lead's integration tests drive the CLI against the real daemon.
//
// Methods not defined here fall through to the nil embedded Service and
// panic, which the handler turns into a 500.
type hostService struct {
	httpapi.Service
	dir string

	mu        sync.Mutex
	sandboxes map[string]api.SandboxInfo
	created   []api.CreateSandboxRequest
	removed   []string
	execs     []sandbox.ExecOptions
	createErr error
	doctor    []api.DoctorCheck
	// resizes receives every Resize of every process, if not nil.
	resizes chan [2]uint16
}

// startDaemon serves a hostService on a Unix socket and returns it with the
// --socket argument that reaches it.
func startDaemon(t *testing.T) (*hostService, string) {
	t.Helper()
	dir := t.TempDir()
	svc := &hostService{dir: dir, sandboxes: map[string]api.SandboxInfo{}}
	sock := filepath.Join(dir, "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httpapi.NewHandler(svc, httpapi.HandlerOptions{})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return svc, sock
}

func (s *hostService) root(name string) string { return filepath.Join(s.dir, "sb", name) }

func (s *hostService) has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sandboxes[name]
	return ok
}

func (s *hostService) add(name string) {
	os.MkdirAll(s.root(name), 0o755)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sandboxes[name] = api.SandboxInfo{Name: name, UUID: "uuid-" + name, Status: api.StatusRunning, Backend: "host",
		CreatedAt: time.Now().Add(-time.Hour)}
}

func (s *hostService) get(name string) (api.SandboxInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, ok := s.sandboxes[name]
	if !ok {
		return api.SandboxInfo{}, fmt.Errorf("%w: sandbox %q", errdefs.ErrNotFound, name)
	}
	return sb, nil
}

func (s *hostService) CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error) {
	s.mu.Lock()
	s.created = append(s.created, req)
	err := s.createErr
	_, taken := s.sandboxes[req.Name]
	s.mu.Unlock()
	if err != nil {
		return api.SandboxInfo{}, err
	}
	if taken {
		return api.SandboxInfo{}, fmt.Errorf("%w: sandbox %q", errdefs.ErrAlreadyExists, req.Name)
	}
	s.add(req.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	sb := s.sandboxes[req.Name]
	sb.Image, sb.Labels, sb.Ephemeral = req.Image, req.Labels, req.Ephemeral
	s.sandboxes[req.Name] = sb
	return sb, nil
}

func (s *hostService) ListSandboxes(ctx context.Context) ([]api.SandboxInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.SandboxInfo
	for _, sb := range s.sandboxes {
		out = append(out, sb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *hostService) GetSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	return s.get(name)
}

func (s *hostService) StopSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	sb, err := s.get(name)
	if err != nil {
		return sb, err
	}
	sb.Status = api.StatusStopped
	s.mu.Lock()
	s.sandboxes[name] = sb
	s.mu.Unlock()
	return sb, nil
}

func (s *hostService) RemoveSandbox(ctx context.Context, name string) error {
	if _, err := s.get(name); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.sandboxes, name)
	s.removed = append(s.removed, name)
	s.mu.Unlock()
	return os.RemoveAll(s.root(name))
}

func (s *hostService) ExtendSandbox(ctx context.Context, name string, by time.Duration) (api.SandboxInfo, error) {
	sb, err := s.get(name)
	if err != nil {
		return sb, err
	}
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).Add(by)
	sb.ExpiresAt = &exp
	return sb, nil
}

func (s *hostService) SandboxLogs(ctx context.Context, name string) ([]api.LogEvent, error) {
	if _, err := s.get(name); err != nil {
		return nil, err
	}
	return []api.LogEvent{
		{Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Event: "sandbox_created", Sandbox: name, Details: map[string]any{"image": "base"}},
		{Timestamp: time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC), Event: "sandbox_started\x1b[31m", Sandbox: name},
	}, nil
}

func (s *hostService) ListImages(ctx context.Context) ([]api.ImageInfo, error) {
	return []api.ImageInfo{{Name: "base", ID: "sha256:0123456789abcdef0123", Size: 3 << 20, CreatedAt: time.Now(), Source: "/src"}}, nil
}

func (s *hostService) ImportImage(ctx context.Context, req api.ImportImageRequest) (api.ImageInfo, error) {
	return api.ImageInfo{Name: req.Name, ID: "sha256:1", Source: req.Path}, nil
}

func (s *hostService) ListDetached(ctx context.Context, name string) ([]api.DetachedCommand, error) {
	code := 3
	return []api.DetachedCommand{{ID: "bg-1", Sandbox: name, Command: []string{"sleep", "9"}, PID: 42, Status: api.DetachedCompleted, ExitCode: &code}}, nil
}

func (s *hostService) DetachedLogs(ctx context.Context, name, id string) (api.DetachedLogs, error) {
	return api.DetachedLogs{Stdout: "out\n", Stderr: "err\n"}, nil
}

func (s *hostService) Doctor(ctx context.Context) []api.DoctorCheck {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doctor
}

func (s *hostService) setDoctor(checks ...api.DoctorCheck) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doctor = checks
}

func (s *hostService) StartDetached(ctx context.Context, name string, req sandbox.ExecOptions) (api.DetachedCommand, error) {
	if _, err := s.get(name); err != nil {
		return api.DetachedCommand{}, err
	}
	return api.DetachedCommand{ID: "bg-1", Sandbox: name, Command: req.Argv, Status: api.DetachedRunning}, nil
}

func (s *hostService) Exec(ctx context.Context, name string, req sandbox.ExecOptions) (sandbox.Process, error) {
	if _, err := s.get(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.execs = append(s.execs, req)
	s.mu.Unlock()
	p, err := startHostProc(s.root(name), req)
	if err != nil {
		return nil, err
	}
	p.resizes = s.resizes
	return p, nil
}

// hostProc is a real host process behind sandbox.Process.
type hostProc struct {
	cmd            *exec.Cmd
	stdin          *os.File
	stdout, stderr *os.File
	waitOnce       sync.Once
	status         sandbox.ExitStatus
	waitErr        error
	resizes        chan [2]uint16
}

func startHostProc(dir string, req sandbox.ExecOptions) (*hostProc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("%w: %v", errdefs.ErrNotFound, err)
	}
	p := &hostProc{cmd: cmd, stdin: inW, stdout: outR, stderr: errR}
	if !req.Stdin {
		inW.Close()
	}
	return p, nil
}

func (p *hostProc) PID() int              { return p.cmd.Process.Pid }
func (p *hostProc) Stdin() io.WriteCloser { return p.stdin }
func (p *hostProc) Stdout() io.Reader     { return p.stdout }
func (p *hostProc) Stderr() io.Reader     { return p.stderr }
func (p *hostProc) Resize(rows, cols uint16) error {
	if p.resizes != nil {
		p.resizes <- [2]uint16{rows, cols}
	}
	return nil
}
func (p *hostProc) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (p *hostProc) Wait() (sandbox.ExitStatus, error) {
	p.waitOnce.Do(func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				p.status.Signal = int(ws.Signal())
			} else {
				p.status.Code = ee.ExitCode()
			}
		default:
			p.waitErr = err
		}
	})
	return p.status, p.waitErr
}

func (p *hostProc) Close() error {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.Wait()
	p.stdin.Close()
	p.stdout.Close()
	p.stderr.Close()
	return nil
}

func (s *hostService) ListDir(ctx context.Context, name, p string) ([]api.FileInfo, error) {
	if _, err := s.get(name); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(s.root(name), p))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", errdefs.ErrNotFound, p)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
	}
	var out []api.FileInfo
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		info := api.FileInfo{Name: e.Name(), Size: fi.Size(), IsDir: fi.IsDir(), Mode: fi.Mode().String()}
		if fi.Mode()&os.ModeSymlink != 0 {
			info.Link, _ = os.Readlink(filepath.Join(s.root(name), p, e.Name()))
		}
		out = append(out, info)
	}
	return out, nil
}

// hostileTar is what TarOut sends for the sandbox path "/hostile": an entry
// that climbs out of the destination.
func hostileTar() []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "hostile/", Typeflag: tar.TypeDir, Mode: 0o755})
	body := []byte("pwned")
	tw.WriteHeader(&tar.Header{Name: "hostile/../../escaped", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
	tw.Write(body)
	tw.Close()
	return b.Bytes()
}

func (s *hostService) TarOut(ctx context.Context, name, p string, w io.Writer) error {
	if _, err := s.get(name); err != nil {
		return err
	}
	if p == "/hostile" {
		_, err := w.Write(hostileTar())
		return err
	}
	full := filepath.Join(s.root(name), p)
	if _, err := os.Lstat(full); err != nil {
		return fmt.Errorf("%w: %s", errdefs.ErrNotFound, p)
	}
	return safetar.Write(ctx, w, full)
}

func (s *hostService) TarIn(ctx context.Context, name, dir string, r io.Reader) error {
	if _, err := s.get(name); err != nil {
		return err
	}
	full := filepath.Join(s.root(name), dir)
	if err := os.MkdirAll(full, 0o755); err != nil {
		return err
	}
	return safetar.Extract(ctx, full, r, safetar.Options{})
}

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// cli runs the CLI in-process with the given stdin (nil: an empty reader)
// and returns its stdout, stderr and exit code.
func cli(t *testing.T, stdin io.Reader, args ...string) (string, string, int) {
	t.Helper()
	var out, errb syncBuffer
	code := cliTo(t, stdin, &out, &errb, args...)
	return out.String(), errb.String(), code
}

func cliTo(t *testing.T, stdin io.Reader, out, errb io.Writer, args ...string) int {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	root := NewRootCmd(NewApp())
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(out)
	root.SetErr(errb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return Execute(ctx, root)
}

// snapshot returns copies of what the service recorded.
func (s *hostService) snapshot() (created []api.CreateSandboxRequest, removed []string, execs []sandbox.ExecOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(created, s.created...), append(removed, s.removed...), append(execs, s.execs...)
}

func (s *hostService) createdReqs() []api.CreateSandboxRequest { c, _, _ := s.snapshot(); return c }
func (s *hostService) removedNames() []string                  { _, r, _ := s.snapshot(); return r }
func (s *hostService) execOpts() []sandbox.ExecOptions         { _, _, e := s.snapshot(); return e }

func (s *hostService) setCreateErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.createErr = err
}
