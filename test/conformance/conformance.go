// Package conformance is the sandbox semantics every backend must honour,
// written once against the public API (pkg/client). A backend is done when
// Run passes against a daemon that uses it; the integration tests call Run
// for each backend this host can run.
//
// The suite creates its own sandboxes, named with a prefix, and removes
// them at the end. Tests inside run sequentially: one sandbox is shared by
// the cheap checks to keep the suite fast on TCG-emulated backends.
package conformance

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Options describe the backend under test.
type Options struct {
	Backend string
	// Image for the sandboxes; "" is the default (host) image.
	Image string
	// Prefix makes sandbox names unique per run.
	Prefix string
}

// Run runs the whole suite.
func Run(t *testing.T, c *client.Client, opts Options) {
	ctx := context.Background()
	name := opts.Prefix + "conf"
	info, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: name, Backend: opts.Backend, Image: opts.Image})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { c.RemoveSandbox(context.Background(), name) })
	if info.Status != api.StatusRunning || info.Backend != opts.Backend || info.UUID == "" {
		t.Fatalf("created sandbox: %+v", info)
	}
	s := &suite{c: c, name: name, opts: opts}
	t.Run("Exec", s.exec)
	t.Run("ExecErrors", s.execErrors)
	t.Run("Isolation", s.isolation)
	t.Run("Files", s.files)
	t.Run("Tar", s.tar)
	t.Run("Detached", s.detached)
	t.Run("StreamExec", s.streamExec)
	t.Run("Lookup", s.lookup)
	t.Run("StopStartKeepsFiles", s.stopStart)
	t.Run("Names", s.names)
}

type suite struct {
	c    *client.Client
	name string
	opts Options
}

func (s *suite) run(t *testing.T, req api.ExecRequest) api.ExecResponse {
	t.Helper()
	res, err := s.c.Exec(context.Background(), s.name, req)
	if err != nil {
		t.Fatalf("exec %q: %v", req.Command, err)
	}
	return res
}

func (s *suite) exec(t *testing.T) {
	res := s.run(t, api.ExecRequest{Command: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if res.Stdout != "out\n" || res.Stderr != "err\n" || res.ExitCode != 3 {
		t.Errorf("stdout %q stderr %q exit %d", res.Stdout, res.Stderr, res.ExitCode)
	}
	if !strings.Contains(res.Output, "out\n") || !strings.Contains(res.Output, "err\n") {
		t.Errorf("combined output %q", res.Output)
	}
	res = s.run(t, api.ExecRequest{Command: []string{"sh", "-c", "echo $FOO; pwd"}, Env: []string{"FOO=bar"}, Workdir: "/tmp"})
	if res.Stdout != "bar\n/tmp\n" {
		t.Errorf("env/workdir: %q", res.Stdout)
	}
	res = s.run(t, api.ExecRequest{Command: []string{"cat"}, Stdin: "piped input"})
	if res.Stdout != "piped input" {
		t.Errorf("stdin: %q", res.Stdout)
	}
	res = s.run(t, api.ExecRequest{Command: []string{"id", "-u"}})
	if res.Stdout != "0\n" {
		t.Errorf("default user: %q", res.Stdout)
	}
	res = s.run(t, api.ExecRequest{Command: []string{"id", "-u"}, User: "65534"})
	if res.Stdout != "65534\n" {
		t.Errorf("user 65534: %q", res.Stdout)
	}
}

func (s *suite) execErrors(t *testing.T) {
	res := s.run(t, api.ExecRequest{Command: []string{"definitely-not-a-command"}})
	if res.ExitCode != 127 || !strings.Contains(res.Stderr+res.Error, "not found") {
		t.Errorf("missing binary: exit %d stderr %q error %q", res.ExitCode, res.Stderr, res.Error)
	}
	start := time.Now()
	res = s.run(t, api.ExecRequest{Command: []string{"sleep", "30"}, Timeout: "500ms"})
	if res.ExitCode != 124 || !res.TimedOut || time.Since(start) > 10*time.Second {
		t.Errorf("timeout: exit %d timed_out %v after %v", res.ExitCode, res.TimedOut, time.Since(start))
	}
	res = s.run(t, api.ExecRequest{Command: []string{"sh", "-c", "kill -9 $$"}})
	if res.ExitCode != 137 {
		t.Errorf("killed by SIGKILL: exit %d", res.ExitCode)
	}
	_, err := s.c.Exec(context.Background(), s.name, api.ExecRequest{})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("empty command: %v", err)
	}
	_, err = s.c.Exec(context.Background(), "no-such-sandbox", api.ExecRequest{Command: []string{"true"}})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("exec in a missing sandbox: %v", err)
	}
}

// isolation checks what every backend must hide, whatever its mechanism.
func (s *suite) isolation(t *testing.T) {
	res := s.run(t, api.ExecRequest{Command: []string{"sh", "-c", "cat /etc/shadow 2>&1; echo rc=$?"}})
	if !strings.Contains(res.Stdout, "rc=1") {
		t.Errorf("/etc/shadow readable: %q", res.Stdout)
	}
	s.networkIsolation(t)
	// Its own pid namespace: the agent, this shell and ls, give or take.
	res = s.run(t, api.ExecRequest{Command: []string{"sh", "-c", "ls /proc | grep -c '^[0-9]'"}})
	if n, err := strconv.Atoi(strings.TrimSpace(res.Stdout)); err != nil || n > 10 {
		t.Errorf("sees %q processes; a pid namespace shows only the sandbox's", res.Stdout)
	}
	res = s.run(t, api.ExecRequest{Command: []string{"hostname"}})
	if strings.TrimSpace(res.Stdout) != s.name {
		t.Errorf("hostname %q, want %q", res.Stdout, s.name)
	}
}

// ListInterfaces is a shell command that prints the sandbox's network
// interfaces, one a line, from /proc/net/dev: every backend's kernel has it
// (runc's and a microVM's Linux, and gVisor's Sentry, which has no
// /sys/class/net), and it lists the interfaces of the caller's network
// namespace, as /sys/class/net does.
const ListInterfaces = `tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '`

// networkIsolation checks the sandbox's interfaces against the network
// the daemon says it has: lo only ("none", "loopback"), or lo and one
// interface whose only peer is the gateway, which is also the only
// nameserver ("gateway"). What the gateway lets through is the network
// suite's business (test/integration/network_test.go).
func (s *suite) networkIsolation(t *testing.T) {
	info, err := s.c.GetSandbox(context.Background(), s.name)
	if err != nil {
		t.Fatal(err)
	}
	res := s.run(t, api.ExecRequest{Command: []string{"sh", "-c", ListInterfaces}})
	ifaces := strings.Fields(res.Stdout)
	switch info.Network {
	case "none", "loopback":
		if len(ifaces) > 1 || (len(ifaces) == 1 && ifaces[0] != "lo") {
			t.Errorf("network %q: interfaces %q, want only lo", info.Network, ifaces)
		}
	case "gateway":
		if len(ifaces) != 2 || !slices.Contains(ifaces, "lo") {
			t.Errorf("network gateway: interfaces %q, want lo and one link to the gateway", ifaces)
		}
		res = s.run(t, api.ExecRequest{Command: []string{"sh", "-c", "grep '^nameserver' /etc/resolv.conf"}})
		if strings.TrimSpace(res.Stdout) != "nameserver 100.96.0.1" {
			t.Errorf("resolv.conf nameservers %q, want only the gateway 100.96.0.1", res.Stdout)
		}
		res = s.run(t, api.ExecRequest{Command: []string{"sh", "-c", "getent hosts not-allowed.invalid; echo rc=$?"}})
		if strings.Contains(res.Stdout, "rc=0") {
			t.Errorf("a name outside the policy resolved: %q", res.Stdout)
		}
	default:
		t.Errorf("sandbox network %q: want none, loopback or gateway", info.Network)
	}
}

func (s *suite) files(t *testing.T) {
	ctx := context.Background()
	data := []byte("hello\x00binary\xff")
	if err := s.c.WriteFile(ctx, s.name, "/tmp/conf/dir/f.bin", bytes.NewReader(data), 0o640); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := s.c.ReadFile(ctx, s.name, "/tmp/conf/dir/f.bin")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q, %v", got, err)
	}
	res := s.run(t, api.ExecRequest{Command: []string{"stat", "-c", "%a %s", "/tmp/conf/dir/f.bin"}})
	if res.Stdout != fmt.Sprintf("640 %d\n", len(data)) {
		t.Errorf("mode/size in sandbox: %q", res.Stdout)
	}
	list, err := s.c.ListDir(ctx, s.name, "/tmp/conf/dir")
	if err != nil || len(list) != 1 || list[0].Name != "f.bin" || list[0].Size != int64(len(data)) {
		t.Errorf("list: %+v, %v", list, err)
	}
	if err := s.c.Mkdir(ctx, s.name, "/tmp/conf/made/deep"); err != nil {
		t.Errorf("mkdir: %v", err)
	}
	if _, err := s.c.WriteFiles(ctx, s.name, map[string]string{"/tmp/conf/a.txt": "A", "/tmp/conf/b.txt": "B"}); err != nil {
		t.Errorf("batch write: %v", err)
	}
	if got, _ := s.c.ReadFile(ctx, s.name, "/tmp/conf/b.txt"); string(got) != "B" {
		t.Errorf("batch-written b.txt = %q", got)
	}
	if err := s.c.DeleteFile(ctx, s.name, "/tmp/conf/a.txt", false); err != nil {
		t.Errorf("delete: %v", err)
	}
	if _, err := s.c.ReadFile(ctx, s.name, "/tmp/conf/a.txt"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("read deleted file: %v", err)
	}
	if err := s.c.DeleteFile(ctx, s.name, "/tmp/conf/made", false); err == nil {
		t.Errorf("non-recursive delete of a non-empty directory succeeded")
	}
	if err := s.c.DeleteFile(ctx, s.name, "/tmp/conf/made", true); err != nil {
		t.Errorf("recursive delete: %v", err)
	}
	for _, bad := range []string{"/tmp/../etc/passwd", "/tmp/x\x00y"} {
		if _, err := s.c.ReadFile(ctx, s.name, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("read %q: %v, want invalid argument", bad, err)
		}
	}
	if err := s.c.WriteFile(ctx, s.name, "/usr/bin/conf-should-fail", strings.NewReader("x"), 0o644); err == nil {
		t.Errorf("writing into the read-only /usr succeeded")
	}
}

func (s *suite) tar(t *testing.T) {
	ctx := context.Background()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "proj/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "proj/main.txt", Typeflag: tar.TypeReg, Mode: 0o600, Size: 5})
	tw.Write([]byte("main\n"))
	tw.WriteHeader(&tar.Header{Name: "proj/link", Typeflag: tar.TypeSymlink, Linkname: "main.txt"})
	tw.Close()
	if err := s.c.TarIn(ctx, s.name, "/tmp/tarin", &buf); err != nil {
		t.Fatalf("tar in: %v", err)
	}
	res := s.run(t, api.ExecRequest{Command: []string{"sh", "-c", "cat /tmp/tarin/proj/link; stat -c %a /tmp/tarin/proj/main.txt"}})
	if res.Stdout != "main\n600\n" {
		t.Errorf("after tar in: %q", res.Stdout)
	}
	rc, err := s.c.TarOut(ctx, s.name, "/tmp/tarin/proj")
	if err != nil {
		t.Fatalf("tar out: %v", err)
	}
	defer rc.Close()
	names := map[string]bool{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		names[strings.TrimSuffix(h.Name, "/")] = true
	}
	for _, want := range []string{"proj", "proj/main.txt", "proj/link"} {
		if !names[want] {
			t.Errorf("tar out lacks %q (has %v)", want, names)
		}
	}
	// A hostile archive is refused and writes nothing outside its target.
	buf.Reset()
	tw = tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "../escape.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	if err := s.c.TarIn(ctx, s.name, "/tmp/tarin2", &buf); err == nil {
		t.Errorf("tar with ../ accepted")
	}
	if res := s.run(t, api.ExecRequest{Command: []string{"test", "-e", "/tmp/escape.txt"}}); res.ExitCode == 0 {
		t.Errorf("../escape.txt was written")
	}
}

func (s *suite) detached(t *testing.T) {
	ctx := context.Background()
	d, err := s.c.ExecDetached(ctx, s.name, api.ExecRequest{Command: []string{"sh", "-c", "echo started; echo oops >&2; sleep 60"}})
	if err != nil {
		t.Fatalf("detach: %v", err)
	}
	if d.ID == "" || d.Status != api.DetachedRunning {
		t.Fatalf("detached: %+v", d)
	}
	waitFor(t, "detached output", func() bool {
		l, err := s.c.DetachedLogs(ctx, s.name, d.ID)
		return err == nil && l.Stdout == "started\n" && l.Stderr == "oops\n"
	})
	list, err := s.c.ListDetached(ctx, s.name)
	if err != nil || len(list) == 0 {
		t.Errorf("list detached: %v %v", list, err)
	}
	if err := s.c.KillDetached(ctx, s.name, d.ID); err != nil {
		t.Fatalf("kill detached: %v", err)
	}
	waitFor(t, "detached exit", func() bool {
		got, err := s.c.GetDetached(ctx, s.name, d.ID)
		return err == nil && got.Status != api.DetachedRunning && got.ExitCode != nil
	})
	if _, err := s.c.GetDetached(ctx, s.name, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown detached id: %v", err)
	}
}

func (s *suite) streamExec(t *testing.T) {
	ctx := context.Background()
	st, err := s.c.ExecStream(ctx, s.name, api.ExecRequest{Command: []string{"sh", "-c", "read line; echo got:$line; echo e >&2; exit 5"}})
	if err != nil {
		t.Fatalf("exec stream: %v", err)
	}
	defer st.Close()
	io.WriteString(st.Stdin(), "ping\n")
	st.Stdin().Close()
	var out, errb bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&errb, st.Stderr()); close(done) }()
	io.Copy(&out, st.Stdout())
	<-done
	exit, err := st.Wait()
	if err != nil || exit.ExitCode != 5 || out.String() != "got:ping\n" || errb.String() != "e\n" {
		t.Errorf("stream: exit %+v err %v stdout %q stderr %q", exit, err, out.String(), errb.String())
	}
	// A TTY with a size.
	st, err = s.c.ExecStream(ctx, s.name, api.ExecRequest{Command: []string{"sh", "-c", "stty size; tty"}, TTY: true, Rows: 33, Cols: 101})
	if err != nil {
		t.Fatalf("tty stream: %v", err)
	}
	defer st.Close()
	go io.Copy(io.Discard, st.Stderr())
	b, _ := io.ReadAll(st.Stdout())
	if exit, err := st.Wait(); err != nil || exit.ExitCode != 0 || !strings.Contains(string(b), "33 101") || !strings.Contains(string(b), "/dev/pts/") {
		t.Errorf("tty: exit %+v err %v output %q", exit, err, b)
	}
}

func (s *suite) lookup(t *testing.T) {
	ctx := context.Background()
	info, err := s.c.GetSandbox(ctx, s.name)
	if err != nil {
		t.Fatal(err)
	}
	byID, err := s.c.GetSandboxByUUID(ctx, info.UUID)
	if err != nil || byID.Name != s.name {
		t.Errorf("by uuid: %+v %v", byID, err)
	}
	list, err := s.c.ListSandboxes(ctx)
	found := false
	for _, sb := range list {
		found = found || sb.Name == s.name
	}
	if err != nil || !found {
		t.Errorf("list lacks %s: %v", s.name, err)
	}
	if _, err := s.c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: s.name, Backend: s.opts.Backend}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("duplicate name: %v", err)
	}
	logs, err := s.c.SandboxLogs(ctx, s.name)
	if err != nil || len(logs) < 2 || logs[0].Event != "sandbox_created" {
		t.Errorf("logs: %+v %v", logs, err)
	}
}

func (s *suite) stopStart(t *testing.T) {
	ctx := context.Background()
	if err := s.c.WriteFile(ctx, s.name, "/root/keep.txt", strings.NewReader("kept"), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := s.c.StopSandbox(ctx, s.name)
	if err != nil || info.Status != api.StatusStopped {
		t.Fatalf("stop: %+v %v", info, err)
	}
	_, err = s.c.Exec(ctx, s.name, api.ExecRequest{Command: []string{"true"}})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("exec in a stopped sandbox: %v", err)
	}
	info, err = s.c.StartSandbox(ctx, s.name)
	if err != nil || info.Status != api.StatusRunning {
		t.Fatalf("start: %+v %v", info, err)
	}
	got, err := s.c.ReadFile(ctx, s.name, "/root/keep.txt")
	if err != nil || string(got) != "kept" {
		t.Errorf("file after restart: %q %v", got, err)
	}
}

func (s *suite) names(t *testing.T) {
	ctx := context.Background()
	for _, bad := range []string{"", "-x", "a/b", "../x", strings.Repeat("a", 64), "sp ace"} {
		if _, err := s.c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: bad, Backend: s.opts.Backend}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("name %q: %v, want invalid argument", bad, err)
		}
	}
	if _, err := s.c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: s.opts.Prefix + "prof", Profile: "bogus", Backend: s.opts.Backend}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad profile: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
