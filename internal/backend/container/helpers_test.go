package container

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/internal/testutil"
)

// agentBin is the real guest agent (cmd/agentkernel-agent) the tests run as
// the sandbox's init, and probeBin a static test program for images without
// a shell; both are built in TestMain below a 0700 directory, as the
// daemon's data directory would be.
var agentBin, probeBin string

// sharedImages is one image store for all tests, so that the host's /etc is
// copied once (image names are unique per test).
var sharedImages *image.Store

// skipReason is set when the tests cannot run here.
var skipReason string

const (
	supervisorEnv    = "AK_CONTAINER_TEST_SUPERVISOR"
	testCgroupParent = "/agentkernel-test"
)

func TestMain(m *testing.M) {
	if os.Getenv(supervisorEnv) != "" {
		os.Exit(supervisorMain())
	}
	// Like the real supervisor: orphaned container inits become our
	// children, so exits can be reaped and their status reported.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	_, cleanup, err := buildAgent()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	// The sandboxes' cgroups are gone; remove their (empty) parent.
	if dirs, err := cgroupDirs(testCgroupParent); err == nil {
		for _, d := range dirs {
			unix.Rmdir(d)
		}
	}
	os.Exit(code)
}

func buildAgent() (string, func(), error) {
	switch {
	case os.Geteuid() != 0:
		skipReason = "needs root"
		return "", func() {}, nil
	default:
		if _, err := exec.LookPath("runc"); err != nil {
			skipReason = "needs runc in PATH"
			return "", func() {}, nil
		}
	}
	dir, err := os.MkdirTemp("", "ak-agent-") // 0700
	if err != nil {
		return "", nil, err
	}
	agentBin = filepath.Join(dir, "bin", "agentkernel-agent")
	probeBin = filepath.Join(dir, "bin", "probe")
	for out, pkg := range map[string]string{agentBin: "../../../cmd/agentkernel-agent", probeBin: "./testdata/probe"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("building %s: %v\n%s", pkg, err, b)
		}
	}
	if sharedImages, err = image.Open(filepath.Join(dir, "images"), image.Options{}); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

func requireRunc(t testing.TB) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// env is a private agentkernel-like home: 0700 directories owned by root.
type env struct {
	home    string
	b       *Backend
	opts    Options
	images  *image.Store
	rootfsD string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	requireRunc(t)
	home := t.TempDir()
	rootfsDir, err := os.MkdirTemp("", "ak-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(rootfsDir, 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(rootfsDir) })
	st := sharedImages
	opts := Options{
		RuntimeRoot:  filepath.Join(home, "runc"),
		RootfsDir:    rootfsDir,
		CgroupParent: testCgroupParent,
		Images:       st,
	}
	return &env{home: home, b: New(opts), opts: opts, images: st, rootfsD: rootfsDir}
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return "t-" + hex.EncodeToString(b[:])
}

// spec returns a spec for a new sandbox whose StateDir is
// <home>/sandboxes/<id>, every directory 0700.
func (e *env) spec(t *testing.T) *backend.Spec {
	t.Helper()
	id := randomID()
	sd := filepath.Join(e.home, "sandboxes", id)
	if err := os.MkdirAll(sd, 0o700); err != nil {
		t.Fatal(err)
	}
	return &backend.Spec{
		ID: id, Name: "test", StateDir: sd, AgentPath: agentBin,
		Rootfs:    backend.RootfsSpec{Host: true},
		Security:  backend.Security{Network: "loopback", Seccomp: "default"},
		Resources: backend.Resources{DiskMB: 256},
	}
}

// start starts a sandbox and registers its Stop and a check that nothing
// is left behind.
func (e *env) start(t *testing.T, s *backend.Spec) backend.Instance {
	t.Helper()
	t0 := time.Now()
	inst, err := e.b.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start took %v", time.Since(t0))
	t.Cleanup(func() {
		if err := inst.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
		e.assertClean(t, s)
	})
	return inst
}

// assertClean checks that no runtime state, mount or cgroup of s remains.
func (e *env) assertClean(t *testing.T, s *backend.Spec) {
	t.Helper()
	if e.b.hasRuntimeState(s.ID) {
		t.Errorf("runtime state left behind in %s", e.opts.RuntimeRoot)
	}
	if left, _ := filepath.Glob(filepath.Join(e.opts.RuntimeRoot, s.ID+"*")); len(left) > 0 {
		t.Errorf("runtime files left behind: %v", left)
	}
	rootfs := filepath.Join(e.rootfsD, s.ID)
	if mps, err := mountsUnder(rootfs); err != nil || len(mps) > 0 {
		t.Errorf("mounts left behind: %v %v", mps, err)
	}
	if _, err := os.Lstat(rootfs); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rootfs left behind: %v", err)
	}
	if mps, err := mountsUnder(s.StateDir); err != nil || len(mps) > 0 {
		t.Errorf("mounts left in the state directory (the disk, volumes?): %v %v", mps, err)
	}
	if ls := testutil.LoopDevicesLeft(s.StateDir); len(ls) > 0 {
		t.Errorf("loop devices left: %v", ls)
	}
	dirs, err := cgroupDirs(oci.CgroupsPath(e.opts.CgroupParent, s.ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cgroup left behind: %s", d)
		}
	}
}

// result is what one command in the sandbox produced.
type result struct {
	Stdout, Stderr string
	Code           int
}

// client opens an agentproto session with the sandbox's agent.
func client(t *testing.T, inst backend.Instance) *agentproto.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := inst.DialAgent(ctx)
	if err != nil {
		t.Fatalf("DialAgent: %v", err)
	}
	c, err := agentproto.NewClient(conn)
	if err != nil {
		t.Fatalf("agent session: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run executes argv in the sandbox through its agent.
func run(t *testing.T, inst backend.Instance, argv ...string) result {
	t.Helper()
	c := client(t, inst)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := c.Exec(ctx, agentproto.ExecRequest{Argv: argv, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("exec %v: %v", argv, err)
	}
	defer p.Close()
	var stderr []byte
	done := make(chan struct{})
	go func() { stderr, _ = io.ReadAll(p.Stderr()); close(done) }()
	stdout, _ := io.ReadAll(p.Stdout())
	<-done
	st, err := p.Wait()
	if err != nil {
		t.Fatalf("exec %v: %v", argv, err)
	}
	return result{Stdout: string(stdout), Stderr: string(stderr) + st.Error, Code: st.Code}
}

// sh runs a shell command and fails the test unless it exits 0.
func sh(t *testing.T, inst backend.Instance, script string) string {
	t.Helper()
	r := run(t, inst, "/bin/sh", "-c", script)
	if r.Code != 0 {
		t.Fatalf("%q exited %d: %s%s", script, r.Code, r.Stdout, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

// supervisorMain is a stand-in supervisor in a child process: it starts the
// sandbox described by $AK_CONTAINER_TEST_SUPERVISOR (a JSON file holding
// the options and spec), prints "ready <init pid>" and waits to be killed.
func supervisorMain() int {
	var cfg struct {
		Options Options
		Images  string
		Spec    backend.Spec
	}
	b, err := os.ReadFile(os.Getenv(supervisorEnv))
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	if cfg.Options.Images, err = image.Open(cfg.Images, image.Options{}); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if _, err := New(cfg.Options).Start(context.Background(), &cfg.Spec); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	pid, _ := readPid(filepath.Join(cfg.Spec.StateDir, "init.pid"))
	fmt.Println("ready", pid)
	select {}
}

// startSupervisor runs supervisorMain in a child process and returns it
// with the container init's pid.
func (e *env) startSupervisor(t *testing.T, s *backend.Spec) (*exec.Cmd, int) {
	t.Helper()
	cfgFile := filepath.Join(e.home, "supervisor-"+s.ID+".json")
	opts := e.opts
	opts.Images = nil
	b, _ := json.Marshal(map[string]any{"Options": opts, "Images": e.images.Root(), "Spec": s})
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), supervisorEnv+"="+cfgFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	var pid int
	if _, serr := fmt.Sscanf(line, "ready %d", &pid); err != nil || serr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("supervisor: %q %v", line, err)
	}
	return cmd, pid
}
