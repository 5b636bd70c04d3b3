package httpapi

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TestEveryRouteThroughClient drives every route of the table through the
// Go SDK against the fake, and fails if one was not reached.
func TestEveryRouteThroughClient(t *testing.T) {
	// Over TCP a host path must lie under HostPaths (hostpath_test.go).
	hostDir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	alpineTar := filepath.Join(hostDir, "alpine.tar")
	if err := os.WriteFile(alpineTar, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, HandlerOptions{Token: "s3cret", HostPaths: []string{hostDir}, OpenCode: &fakeOpenCode{}, MCP: mcpStandIn})
	c, ctx := e.client, testCtx(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	wantIs := func(err, class error) {
		t.Helper()
		if !errors.Is(err, class) {
			t.Fatalf("error %v: want class %v", err, class)
		}
	}

	must(c.Health(ctx))
	var doc map[string]any
	resp, body := e.do(t, "GET", "/openapi.json", nil, map[string]string{"Authorization": "Bearer s3cret"})
	if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi.json: %d %.200s", resp.StatusCode, body)
	}

	info, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "sb1", Image: "alpine:3.20", Labels: map[string]string{"a": "b"}, TTL: "1h"})
	must(err)
	if info.Name != "sb1" || info.Status != api.StatusRunning || info.Labels["a"] != "b" {
		t.Fatalf("created %+v", info)
	}
	_, err = c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "sb1"})
	wantIs(err, errdefs.ErrAlreadyExists)
	list, err := c.ListSandboxes(ctx)
	must(err)
	if len(list) != 1 || list[0].Name != "sb1" {
		t.Fatalf("list %+v", list)
	}
	got, err := c.GetSandbox(ctx, "sb1")
	must(err)
	byUUID, err := c.GetSandboxByUUID(ctx, info.UUID)
	must(err)
	if got.UUID != info.UUID || byUUID.Name != "sb1" {
		t.Fatalf("get %+v by uuid %+v", got, byUUID)
	}
	bs, err := c.Backends(ctx)
	must(err)
	if len(bs) != 1 || bs[0].Name != "container" || !bs[0].Pause || !bs[0].Default {
		t.Fatalf("backends: %+v", bs)
	}
	resp, body = e.do(t, "GET", "/metrics", nil, map[string]string{"Authorization": "Bearer s3cret"})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `agentkernel_operations_total{backend="container",op="exec",result="ok"} 1`) {
		t.Fatalf("metrics: %d %.300s", resp.StatusCode, body)
	}
	if resp, _ := e.do(t, "GET", "/metrics", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("metrics without the token: %d", resp.StatusCode)
	}
	e.fake.emit("sb1", "sandbox_created")
	e.fake.emit("other", "sandbox_created")
	recorded, err := c.Events(ctx, client.EventsOptions{Sandbox: "sb1"}, 10)
	must(err)
	if len(recorded) != 1 || recorded[0].Event != "sandbox_created" || recorded[0].Sandbox != "sb1" {
		t.Fatalf("events: %+v", recorded)
	}
	zero := int64(0)
	var followed []api.Event
	errStop := errors.New("stop")
	if err := c.FollowEvents(ctx, client.EventsOptions{After: &zero}, func(ev api.Event) error {
		followed = append(followed, ev)
		if len(followed) == 2 {
			return errStop
		}
		return nil
	}); !errors.Is(err, errStop) || followed[1].Sandbox != "other" {
		t.Fatalf("follow: %v %+v", err, followed)
	}
	set, err := c.SetPool(ctx, api.SetPoolRequest{PoolKey: api.PoolKey{Image: "host"}, Size: 3})
	must(err)
	pools, err := c.ListPools(ctx)
	must(err)
	if set.Size != 3 || len(pools) != 1 || pools[0].Image != "host" {
		t.Fatalf("pools: set %+v, list %+v", set, pools)
	}
	if _, err := c.SetPool(ctx, api.SetPoolRequest{Size: -1}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("negative pool size: %v", err)
	}
	if _, err := c.SetPool(ctx, api.SetPoolRequest{PoolKey: api.PoolKey{Image: "missing"}, Size: 1}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("pool of a missing image: %v", err)
	}
	paused, err := c.PauseSandbox(ctx, "sb1")
	must(err)
	resumed, err := c.ResumeSandbox(ctx, "sb1")
	must(err)
	if paused.Status != api.StatusPaused || resumed.Status != api.StatusRunning {
		t.Fatalf("pause %+v, resume %+v", paused, resumed)
	}
	stopped, err := c.StopSandbox(ctx, "sb1")
	must(err)
	if stopped.Status != api.StatusStopped {
		t.Fatalf("stop: %+v", stopped)
	}
	_, err = c.Exec(ctx, "sb1", api.ExecRequest{Command: []string{"echo"}})
	wantIs(err, errdefs.ErrFailedPrecondition)
	started, err := c.StartSandbox(ctx, "sb1")
	must(err)
	if started.Status != api.StatusRunning {
		t.Fatalf("start: %+v", started)
	}
	ext, err := c.ExtendSandbox(ctx, "sb1", "1d")
	must(err)
	if ext.ExpiresAt == nil || !ext.ExpiresAt.Equal(info.CreatedAt.Add(24*time.Hour)) {
		t.Fatalf("extend: %+v", ext)
	}
	events, err := c.SandboxLogs(ctx, "sb1")
	must(err)
	if len(events) != 1 || events[0].Event != "sandbox_created" {
		t.Fatalf("logs %+v", events)
	}

	// Exec.
	out, err := c.Exec(ctx, "sb1", api.ExecRequest{Command: []string{"echo", "hello", "world"}})
	must(err)
	if out.Output != "hello world\n" || out.Stdout != out.Output || out.ExitCode != 0 {
		t.Fatalf("exec echo: %+v", out)
	}
	out, err = c.Exec(ctx, "sb1", api.ExecRequest{Command: []string{"both"}})
	must(err)
	if out.Stdout != "out\n" || out.Stderr != "err\n" || len(out.Output) != 8 {
		t.Fatalf("exec both: %+v", out)
	}
	out, err = c.Exec(ctx, "sb1", api.ExecRequest{Command: []string{"exit", "3"}})
	must(err)
	if out.ExitCode != 3 {
		t.Fatalf("exec exit 3: %+v", out)
	}
	out, err = c.Exec(ctx, "sb1", api.ExecRequest{Command: []string{"nosuch"}})
	must(err)
	if out.ExitCode != 127 || !strings.Contains(out.Error, "not found") {
		t.Fatalf("exec nosuch: %+v", out)
	}
	out, err = c.Exec(ctx, "sb1", api.ExecRequest{Command: []string{"cat"}, Stdin: "from stdin"})
	must(err)
	if out.Stdout != "from stdin" {
		t.Fatalf("exec cat: %+v", out)
	}
	out, err = c.Exec(ctx, "sb1", api.ExecRequest{Command: []string{"env"}, Env: []string{"A=1", "B=2"}, Workdir: "/work", Sudo: true, Timeout: "90s"})
	must(err)
	if out.Stdout != "A=1,B=2\n/work\n0\n1m30s\n" {
		t.Fatalf("exec env: %q", out.Stdout)
	}

	// Detached commands.
	cmd, err := c.ExecDetached(ctx, "sb1", api.ExecRequest{Command: []string{"sleep"}})
	must(err)
	if cmd.ID != "cmd1" || cmd.Status != api.DetachedRunning {
		t.Fatalf("detach: %+v", cmd)
	}
	cmds, err := c.ListDetached(ctx, "sb1")
	must(err)
	if len(cmds) != 1 {
		t.Fatalf("detached list: %+v", cmds)
	}
	logs, err := c.DetachedLogs(ctx, "sb1", "cmd1")
	must(err)
	if logs.Stdout != "out of cmd1" || logs.Stderr != "err of cmd1" {
		t.Fatalf("detached logs: %+v", logs)
	}
	must(c.KillDetached(ctx, "sb1", "cmd1"))
	cmd, err = c.GetDetached(ctx, "sb1", "cmd1")
	must(err)
	if cmd.Status != api.DetachedFailed || cmd.ExitCode == nil || *cmd.ExitCode != 137 {
		t.Fatalf("after kill: %+v", cmd)
	}
	_, err = c.GetDetached(ctx, "sb1", "cmd9")
	wantIs(err, errdefs.ErrNotFound)

	// Files.
	must(c.Mkdir(ctx, "sb1", "/work/dir"))
	bin := []byte{0, 1, 2, 0xff, 0xfe, 'x'}
	must(c.WriteFile(ctx, "sb1", "/work/dir/a.bin", bytes.NewReader(bin), 0o600))
	data, err := c.ReadFile(ctx, "sb1", "/work/dir/a.bin")
	must(err)
	if !bytes.Equal(data, bin) {
		t.Fatalf("read back %q", data)
	}
	_, err = c.ReadFile(ctx, "sb1", "/work/dir/none")
	wantIs(err, errdefs.ErrNotFound)
	wr, err := c.WriteFiles(ctx, "sb1", map[string]string{"work/x.txt": "x", "/work/dir/y z.txt": "y"})
	must(err)
	if wr.Written != 2 {
		t.Fatalf("batch write: %+v", wr)
	}
	ents, err := c.ListDir(ctx, "sb1", "/work/dir")
	must(err)
	if len(ents) != 2 || ents[0].Name != "a.bin" || ents[1].Name != "y z.txt" {
		t.Fatalf("list dir: %+v", ents)
	}
	must(c.DeleteFile(ctx, "sb1", "/work/x.txt", false))
	wantIs(c.DeleteFile(ctx, "sb1", "/work/dir", false), errdefs.ErrFailedPrecondition)
	must(c.DeleteFile(ctx, "sb1", "/work/dir", true))
	_, err = c.ListDir(ctx, "sb1", "/work/dir")
	wantIs(err, errdefs.ErrNotFound)

	// Archives.
	var tbuf bytes.Buffer
	tw := tar.NewWriter(&tbuf)
	for _, f := range []struct{ name, body string }{{"one.txt", "1"}, {"sub/two.txt", "22"}} {
		must(tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(f.body))
		must(err)
	}
	must(tw.Close())
	must(c.TarIn(ctx, "sb1", "/data", &tbuf))
	rc, err := c.TarOut(ctx, "sb1", "/data")
	must(err)
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(err)
		names = append(names, h.Name)
	}
	rc.Close()
	if !slices.Equal(names, []string{"one.txt", "sub/two.txt"}) {
		t.Fatalf("tar out: %v", names)
	}
	_, err = c.TarOut(ctx, "sb1", "/nothing")
	wantIs(err, errdefs.ErrNotFound)

	// Runs.
	run, err := c.Run(ctx, api.RunRequest{Command: []string{"echo", "run"}})
	must(err)
	if run.Output != "run\n" || !strings.HasPrefix(run.Sandbox, "run-") {
		t.Fatalf("run: %+v", run)
	}
	if _, err := c.GetSandbox(ctx, run.Sandbox); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("run sandbox not removed: %v", err)
	}
	batch, err := c.BatchRun(ctx, api.BatchRunRequest{Commands: []api.RunRequest{
		{Command: []string{"echo", "a"}}, {Command: []string{"exit", "2"}}, {Command: []string{"echo", "c"}},
	}})
	must(err)
	if len(batch.Results) != 3 || *batch.Results[0].Output != "a\n" || batch.Results[0].Error != nil ||
		batch.Results[1].Error == nil || *batch.Results[1].ExitCode != 2 || *batch.Results[2].Output != "c\n" {
		t.Fatalf("batch: %s", mustJSON(t, batch))
	}
	var evs []string
	must(c.RunStream(ctx, api.RunRequest{Command: []string{"echo", "streamed"}}, func(ev string, data json.RawMessage) error {
		evs = append(evs, ev+" "+string(data))
		return nil
	}))
	if len(evs) < 3 || !strings.HasPrefix(evs[0], "started ") || !strings.Contains(strings.Join(evs, "\n"), `output {"stream":"stdout","data":"streamed\n"}`) ||
		evs[len(evs)-1] != `done {"exit_code":0,"success":true}` {
		t.Fatalf("run stream events: %q", evs)
	}

	// Images and doctor.
	im, err := c.ImportImage(ctx, api.ImportImageRequest{Name: "docker.io/library/alpine:3.20", Path: alpineTar})
	must(err)
	ims, err := c.ListImages(ctx)
	must(err)
	if len(ims) != 1 || ims[0].Name != im.Name {
		t.Fatalf("images %+v", ims)
	}
	must(c.RemoveImage(ctx, "docker.io/library/alpine:3.20"))
	// Pull, inspect, tag, prune (more in images_test.go).
	_, err = c.PullImage(ctx, api.PullImageRequest{Image: "alpine:3.20"}, nil)
	must(err)
	_, err = c.InspectImage(ctx, "alpine:3.20")
	must(err)
	_, err = c.TagImage(ctx, "alpine:3.20", "mine:1")
	must(err)
	_, err = c.PruneImages(ctx)
	must(err)
	// Builds (more in build_test.go): the fake service cannot build.
	_, err = c.BuildImage(ctx, api.BuildImageRequest{Name: "deb", Debian: &api.DebianSource{Suite: "bookworm"}}, nil)
	wantIs(err, errdefs.ErrNotImplemented)
	// Nor commit sandboxes (the daemon does; test/integration/dockerfile_test.go).
	_, err = c.CommitSandbox(ctx, "sb1", api.CommitSandboxRequest{Image: "snap:1"})
	wantIs(err, errdefs.ErrNotImplemented)
	_, err = c.ListSnapshots(ctx)
	wantIs(err, errdefs.ErrNotImplemented)
	_, err = c.TakeSnapshot(ctx, api.TakeSnapshotRequest{Sandbox: "sb1"})
	wantIs(err, errdefs.ErrNotImplemented)
	_, err = c.GetSnapshot(ctx, "s1")
	wantIs(err, errdefs.ErrNotImplemented)
	wantIs(c.DeleteSnapshot(ctx, "s1"), errdefs.ErrNotImplemented)
	_, err = c.RestoreSnapshot(ctx, "s1", api.RestoreSnapshotRequest{})
	wantIs(err, errdefs.ErrNotImplemented)
	_, err = c.ForkSandbox(ctx, "sb1", api.ForkSandboxRequest{Count: 2})
	wantIs(err, errdefs.ErrNotImplemented)
	_, err = c.ExportSandbox(ctx, "sb1")
	wantIs(err, errdefs.ErrNotImplemented)
	// Nor keep volumes (the daemon does; test/integration/volume_test.go).
	_, err = c.ListVolumes(ctx)
	wantIs(err, errdefs.ErrNotImplemented)
	_, err = c.CreateVolume(ctx, api.CreateVolumeRequest{Name: "v1", Size: "16MB"})
	wantIs(err, errdefs.ErrNotImplemented)
	_, err = c.GetVolume(ctx, "v1")
	wantIs(err, errdefs.ErrNotImplemented)
	_, err = c.DeleteVolume(ctx, "v1", true)
	wantIs(err, errdefs.ErrNotImplemented)
	wantIs(c.RemoveImage(ctx, "docker.io/library/alpine:3.20"), errdefs.ErrNotFound)
	checks, err := c.Doctor(ctx)
	must(err)
	if len(checks) != 2 || checks[1].Fix != "none" {
		t.Fatalf("doctor %+v", checks)
	}

	// Streaming exec and attach (more in stream_test.go).
	for _, attach := range []bool{false, true} {
		open := c.ExecStream
		if attach {
			open = c.Attach
		}
		s, err := open(ctx, "sb1", api.ExecRequest{Command: []string{"echo", "ws"}})
		must(err)
		b, err := io.ReadAll(s.Stdout())
		must(err)
		st, err := s.Wait()
		must(err)
		s.Close()
		if string(b) != "ws\n" || st.ExitCode != 0 {
			t.Fatalf("stream (attach %v): %q %+v", attach, b, st)
		}
	}

	exerciseNetworkRoutes(t, c, ctx, "sb1") // network_test.go
	exerciseAuditRoutes(t, c, ctx, "sb1")   // audit_test.go
	exerciseOpenCodeRoutes(t, e, "s3cret")  // opencode_test.go
	exerciseMCPRoute(t, e, "s3cret")        // opencode_test.go
	must(c.RemoveSandbox(ctx, "sb1"))
	_, err = c.GetSandbox(ctx, "sb1")
	wantIs(err, errdefs.ErrNotFound)

	for _, rt := range routes {
		if !e.patterns[rt.muxPattern()] {
			t.Errorf("route %s %s was not exercised", rt.method, rt.pattern)
		}
	}
	if strings.Contains(e.logs.String(), "s3cret") {
		t.Error("the server log contains the token")
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestErrorClassesAcrossTheWire checks that every errdefs class the
// service returns arrives at the client as the same class, with its status.
func TestErrorClassesAcrossTheWire(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	ctx := testCtx(t)
	classes := []error{
		errdefs.ErrInvalidArgument, errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrFailedPrecondition,
		errdefs.ErrUnavailable, errdefs.ErrPermissionDenied, errdefs.ErrUnauthenticated, errdefs.ErrTooLarge,
		errdefs.ErrNotImplemented, errdefs.ErrDeadlineExceeded,
	}
	for _, class := range classes {
		code := errdefs.Code(class)
		_, err := e.client.GetSandbox(ctx, "err-"+code)
		var remote *errdefs.Remote
		if !errors.As(err, &remote) || !errors.Is(err, class) {
			t.Errorf("%s: got %T %v", code, err, err)
			continue
		}
		if !strings.Contains(remote.Message, "fake failure") {
			t.Errorf("%s: message %q", code, remote.Message)
		}
		resp, _ := e.do(t, "GET", "/sandboxes/err-"+code, nil, nil)
		if resp.StatusCode != errdefs.HTTPStatus(class) {
			t.Errorf("%s: status %d, want %d", code, resp.StatusCode, errdefs.HTTPStatus(class))
		}
	}
	_, err := e.client.GetSandbox(ctx, "err-internal")
	var remote *errdefs.Remote
	if !errors.As(err, &remote) || remote.Class != nil || !strings.Contains(err.Error(), "unclassified") {
		t.Errorf("internal: %#v", err)
	}
}

// TestUnixSocket serves the API on a real Unix socket (mode 0600) and
// uses it through the client, including a WebSocket stream.
func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "ak") // short: socket paths are limited to ~108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		t.Fatal(err)
	}
	fake := newFake()
	srv := &http.Server{Handler: NewHandler(fake, HandlerOptions{})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c, err := client.New(client.WithBaseURL("unix://" + sock))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "u1"}); err != nil {
		t.Fatal(err)
	}
	out, err := c.Exec(ctx, "u1", api.ExecRequest{Command: []string{"echo", "over", "unix"}})
	if err != nil || out.Output != "over unix\n" {
		t.Fatalf("exec: %+v %v", out, err)
	}
	s, err := c.ExecStream(ctx, "u1", api.ExecRequest{Command: []string{"cat"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	io.WriteString(s.Stdin(), "ping")
	s.Stdin().Close()
	b, _ := io.ReadAll(s.Stdout())
	if st, err := s.Wait(); err != nil || string(b) != "ping" || st.ExitCode != 0 {
		t.Fatalf("stream over unix: %q %+v %v", b, st, err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi.Mode(), err)
	}
}
