package microvm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/backend/microvm/kernel"
	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// These tests boot real microVMs: QEMU, the Debian kernel (fetched once
// per machine into /var/cache/agentkernel) and the real agent as init.

var (
	agentBin  string
	kernelDir string
	images    *image.Store
	skip      string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if testing.Short() {
			skip = "-short: these tests boot microVMs"
			return m.Run()
		}
		if os.Geteuid() != 0 {
			skip = "needs root"
			return m.Run()
		}
		if _, err := exec.LookPath(DefaultQEMU); err != nil {
			skip = "qemu-system-x86_64 not installed (scripts/setup.sh)"
			return m.Run()
		}
		tmp, err := os.MkdirTemp("", "ak-microvm-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(tmp)
		os.Chmod(tmp, 0o700)
		agentBin = filepath.Join(tmp, "agentkernel-agent")
		cmd := exec.Command("go", "build", "-trimpath", "-o", agentBin, "../../../cmd/agentkernel-agent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building the agent: %v\n%s", err, out)
			return 1
		}
		kernelDir = filepath.Join(tmp, "kernel")
		if _, err := kernel.Setup(context.Background(), kernel.SetupOptions{Dir: kernelDir, CacheDir: filepath.Join(DefaultCacheDir, "kernel")}); err != nil {
			skip = "no guest kernel: " + err.Error()
			return m.Run()
		}
		images, err = image.Open(filepath.Join(tmp, "images"), image.Options{})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func requireVM(t *testing.T) {
	t.Helper()
	if skip != "" {
		t.Skip(skip)
	}
}

func newBackend(t *testing.T, opts Options) *Backend {
	if opts.KernelDir == "" {
		opts.KernelDir = kernelDir
	}
	opts.Images = images
	opts.WritableMB = 512
	return New(opts)
}

func newSpec(t *testing.T) *backend.Spec {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	id := h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	dir := t.TempDir()
	return &backend.Spec{ID: id, Name: "vm-" + h[:6], Backend: "microvm", StateDir: dir, AgentPath: agentBin,
		Rootfs: backend.RootfsSpec{Host: true}, Env: []string{"PATH=/usr/bin:/bin", "GREETING=hi"},
		Security: backend.Security{Network: "loopback"}}
}

func start(t *testing.T, b *Backend, s *backend.Spec) backend.Instance {
	t.Helper()
	t0 := time.Now()
	in, err := b.Start(context.Background(), s)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Logf("Start took %v (accelerator %s)", time.Since(t0), in.(*instance).Accel())
	t.Cleanup(func() { in.Stop(context.Background()) })
	return in
}

func client(t *testing.T, in backend.Instance) *agentproto.Client {
	t.Helper()
	conn, err := in.DialAgent(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentproto.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(ctx context.Context, c *agentproto.Client, argv ...string) (string, string, int, error) {
	p, err := c.Exec(ctx, agentproto.ExecRequest{Argv: argv})
	if err != nil {
		return "", "", 0, err
	}
	defer p.Close()
	var out, errb bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(&out, p.Stdout()) }()
	go func() { defer wg.Done(); io.Copy(&errb, p.Stderr()) }()
	wg.Wait()
	st, err := p.Wait()
	return out.String(), errb.String(), st.Code, err
}

func TestBootExecStop(t *testing.T) {
	requireVM(t)
	b := newBackend(t, Options{Debug: os.Getenv("AK_VM_DEBUG") != ""})
	s := newSpec(t)
	in := start(t, b, s)
	c := client(t, in)
	ctx := context.Background()
	out, errOut, code, err := run(ctx, c, "sh", "-c", "uname -r; hostname; echo $GREETING; cat /proc/cmdline; id -u; touch /root/kept; echo procs=$(ls /proc | grep -c '^[0-9]'); touch /usr/x 2>/dev/null && echo usr-writable; true")
	if err != nil || code != 0 {
		t.Fatalf("exec: %v code %d stderr %q", err, code, errOut)
	}
	t.Logf("guest: %s", out)
	if i := strings.Index(out, "procs="); i >= 0 {
		if n, _ := strconv.Atoi(strings.Fields(out[i+6:])[0]); n > 6 {
			t.Errorf("the sandbox sees %d processes: not its own pid namespace", n)
		}
	}
	k, _ := b.Kernel()
	if !strings.Contains(out, k.Manifest.Release) || !strings.Contains(out, s.Name) || !strings.Contains(out, "hi\n") ||
		strings.Contains(out, "usr-writable") || !strings.Contains(out, "procs=") {
		t.Errorf("guest output %q", out)
	}
	// A second, concurrent connection works on the same port.
	c2 := client(t, in)
	if err := c2.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	vi, err := ReadVMInfo(s.StateDir)
	if err != nil || (vi.Accelerator != AccelTCG && vi.Accelerator != AccelKVM) {
		t.Fatalf("runtime.json: %+v %v", vi, err)
	}
	// Graceful: the agent shuts down and the guest powers off.
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.Exited():
	case <-time.After(20 * time.Second):
		t.Fatal("the VM did not end after the agent's shutdown")
	}
	if err := in.ExitError(); err != nil {
		t.Errorf("clean power-off reported %v", err)
	}
	if err := in.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Files on the writable disk survive a restart.
	in2 := start(t, b, s)
	c3 := client(t, in2)
	if _, _, code, err := run(ctx, c3, "test", "-e", "/root/kept"); err != nil || code != 0 {
		t.Fatalf("/root/kept after restart: code %d %v", code, err)
	}
}

func TestBadResources(t *testing.T) {
	requireVM(t)
	b := newBackend(t, Options{})
	for _, r := range []backend.Resources{{VCPUs: 4096}, {MemoryMB: 1 << 30}, {MemoryMB: 16}} {
		s := newSpec(t)
		s.Resources = r
		_, err := b.Start(context.Background(), s)
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: %v", r, err)
		}
		if _, err := os.Stat(filepath.Join(s.StateDir, "qemu.log")); err == nil {
			t.Errorf("%+v: QEMU was started", r)
		}
	}
}

func TestMissingKernel(t *testing.T) {
	requireVM(t)
	b := newBackend(t, Options{KernelDir: t.TempDir()})
	_, err := b.Start(context.Background(), newSpec(t))
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "agentkernel setup") {
		t.Fatalf("missing kernel: %v", err)
	}
}

// TestReadOnlyRoot: the root is read-only, /tmp is not, and a read-only
// host directory still gets its mount point.
func TestReadOnlyRoot(t *testing.T) {
	requireVM(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644)
	b := newBackend(t, Options{})
	s := newSpec(t)
	s.Security.ReadOnlyRoot = true
	s.Mounts = []backend.Mount{{HostPath: dir, Path: "/probe", ReadOnly: true}}
	in := start(t, b, s)
	c := client(t, in)
	out, _, _, err := run(context.Background(), c, "sh", "-c", "touch /root/x 2>/dev/null && echo root-writable; touch /tmp/x && echo tmp-ok; cat /probe/f")
	if err != nil || out != "tmp-ok\nx" {
		t.Fatalf("read-only root: %q %v", out, err)
	}
}
