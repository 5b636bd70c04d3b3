// Package kubernetes drives the real agentkernel binary, with the
// kubernetes backend configured in daemon.toml, against the test cluster
// that scripts/k8s/test.sh (make test-k8s) brings up and names in the
// environment. Without that cluster every test skips.
package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/testutil"
	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/test/conformance"
)

var (
	skipReason string
	akBin      string
	kubectl    string
	kubeconfig string
	home       *akhome.Home
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	kubeconfig = os.Getenv("AGENTKERNEL_K8S_KUBECONFIG")
	kubectl = os.Getenv("AGENTKERNEL_K8S_KUBECTL")
	if kubeconfig == "" || kubectl == "" {
		skipReason = "no test cluster: AGENTKERNEL_K8S_KUBECONFIG and AGENTKERNEL_K8S_KUBECTL are not set (make test-k8s sets them)"
		return m.Run()
	}
	bin, err := os.MkdirTemp("", "akk8s-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(bin)
	if akBin, _, err = testutil.BuildBinaries(bin); err != nil {
		fmt.Fprintln(os.Stderr, "building:", err)
		return 1
	}
	if home, err = akhome.New("akk8s"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conf := fmt.Sprintf(`[backends.kubernetes]
kubeconfig = %q
namespace = "default"
image = %q
agent_image = %q
storage_class = %q
`, kubeconfig, os.Getenv("AGENTKERNEL_K8S_IMAGE"), os.Getenv("AGENTKERNEL_K8S_AGENT_IMAGE"), os.Getenv("AGENTKERNEL_K8S_STORAGE_CLASS"))
	if err := os.WriteFile(filepath.Join(home.Dir, "daemon.toml"), []byte(conf), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if problems := home.Teardown(); len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "kubernetes: the home was not left clean:")
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "  -", p)
		}
		code = 1
	}
	if code != 0 {
		home.DumpLogs(os.Stderr, 8000)
	}
	// removal tears down behind the API's answer; claims wait for their pod
	var out string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if out = kube(nil, "get", "pods,networkpolicies,persistentvolumeclaims", "-l", "agentkernel.dev/managed=true", "-o", "name"); out == "" {
			break
		}
	}
	if out != "" {
		fmt.Fprintln(os.Stderr, "kubernetes: objects left on the cluster:", out)
		code = 1
	}
	home.RemoveHome()
	return code
}

func requireCluster(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if _, err := ak(t, "sandbox", "list"); err != nil { // starts the daemon
		t.Fatal(err)
	}
}

// ak runs the CLI against the test home.
func ak(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, akBin, args...)
	cmd.Env = home.Environ()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("agentkernel %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// kube runs kubectl on the test cluster; t nil means outside a test.
func kube(t *testing.T, args ...string) string {
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil && t != nil {
		t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func clientT(t *testing.T) *client.Client {
	t.Helper()
	c, err := home.Client()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func podOf(t *testing.T, name string) string {
	t.Helper()
	info, err := clientT(t).GetSandbox(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	home.Remember(info.UUID)
	return "agentkernel-" + info.UUID
}

// TestCLI: create, exec, files both ways and remove, through the real
// binary and daemon; the sandbox is a pod while it exists and nothing is
// left on the cluster after.
func TestCLI(t *testing.T) {
	requireCluster(t)
	if _, err := ak(t, "sandbox", "create", "k8s-cli", "--backend", "kubernetes"); err != nil {
		t.Fatal(err)
	}
	pod := podOf(t, "k8s-cli")
	if got := kube(t, "get", "pod", pod, "-o", "jsonpath={.status.phase} {.spec.containers[0].name}"); got != "Running sandbox" {
		t.Errorf("pod %s: %q", pod, got)
	}
	out, err := ak(t, "exec", "k8s-cli", "--", "sh", "-c", "echo hello from $(hostname); id -u")
	if err != nil || out != "hello from k8s-cli\n0\n" {
		t.Errorf("exec: %q %v", out, err)
	}
	local := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(local, []byte("through the API server\n"), 0o644)
	if _, err := ak(t, "cp", local, "k8s-cli:/tmp/in.txt"); err != nil {
		t.Fatal(err)
	}
	if out, err := ak(t, "exec", "k8s-cli", "--", "sh", "-c", "cat /tmp/in.txt | tr a-z A-Z > /tmp/out.txt"); err != nil {
		t.Fatalf("%q %v", out, err)
	}
	back := filepath.Join(t.TempDir(), "out.txt")
	if _, err := ak(t, "cp", "k8s-cli:/tmp/out.txt", back); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(back); string(b) != "THROUGH THE API SERVER\n" {
		t.Errorf("copied back: %q", b)
	}
	if _, err := ak(t, "sandbox", "rm", "k8s-cli"); err != nil {
		t.Fatal(err)
	}
	// remove answers at once and tears down behind
	var got string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = kube(nil, "get", "pod,networkpolicy,persistentvolumeclaim", pod, "--ignore-not-found", "-o", "name"); got == "" {
			break
		}
	}
	if got != "" {
		t.Errorf("a minute after remove: %q", got)
	}
}

// TestPodDeletedShowsFailed: a pod deleted with kubectl behind the
// daemon's back turns the sandbox failed, with the reason.
func TestPodDeletedShowsFailed(t *testing.T) {
	requireCluster(t)
	c := clientT(t)
	ctx := context.Background()
	if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "k8s-gone", Backend: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.RemoveSandbox(context.Background(), "k8s-gone") })
	pod := podOf(t, "k8s-gone")
	kube(t, "delete", "pod", pod, "--wait=false")
	var info api.SandboxInfo
	deadline := time.Now().Add(time.Minute)
	for {
		var err error
		info, err = c.GetSandbox(ctx, "k8s-gone")
		if err != nil {
			t.Fatal(err)
		}
		if info.Status == api.StatusFailed || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if info.Status != api.StatusFailed || !strings.Contains(info.Error, "deleted") {
		t.Fatalf("after the pod was deleted: status %s, error %q", info.Status, info.Error)
	}
	t.Logf("status %s: %s", info.Status, info.Error)
}

// TestConformance runs the shared sandbox semantics on the kubernetes
// backend, through the daemon's API.
func TestConformance(t *testing.T) {
	requireCluster(t)
	conformance.Run(t, clientT(t), conformance.Options{Backend: "kubernetes", Prefix: "k8s-"})
}

// TestFigures measures sandbox create and an exec round trip on the
// kubernetes backend and, when this host runs it, on the container
// backend, and logs the medians and their ratio (docs/KUBERNETES.md).
func TestFigures(t *testing.T) {
	requireCluster(t)
	c := clientT(t)
	ctx := context.Background()
	measure := func(backendName string) (create, exec time.Duration, err error) {
		var creates, execs []time.Duration
		for i := range 3 {
			name := fmt.Sprintf("fig-%s-%d", backendName, i)
			t0 := time.Now()
			if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: name, Backend: backendName}); err != nil {
				return 0, 0, err
			}
			creates = append(creates, time.Since(t0))
			for range 10 {
				t1 := time.Now()
				res, err := c.Exec(ctx, name, api.ExecRequest{Command: []string{"true"}})
				if err != nil || res.ExitCode != 0 {
					c.RemoveSandbox(ctx, name)
					return 0, 0, fmt.Errorf("exec: %v %+v", err, res)
				}
				execs = append(execs, time.Since(t1))
			}
			if err := c.RemoveSandbox(ctx, name); err != nil {
				return 0, 0, err
			}
		}
		return median(creates), median(execs), nil
	}
	kc, ke, err := measure("kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE kubernetes: create %v, exec round trip %v (medians of 3 creates, 30 execs)", kc, ke)
	cc, ce, err := measure("container")
	if err != nil {
		t.Logf("container backend not measured here: %v", err)
		return
	}
	t.Logf("FIGURE container: create %v, exec round trip %v", cc, ce)
	t.Logf("FIGURE ratio kubernetes/container: create %.1fx, exec %.1fx", float64(kc)/float64(cc), float64(ke)/float64(ce))
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

// TestDoctor: the daemon offers the backend, and doctor's kubernetes checks
// pass against the test cluster with its admin credentials.
func TestDoctor(t *testing.T) {
	requireCluster(t)
	c := clientT(t)
	ctx := context.Background()
	bs, err := c.Backends(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range bs {
		found = found || (b.Name == "kubernetes" && !b.NetworkGateway && !b.Pause)
	}
	if !found {
		t.Errorf("backends: %+v", bs)
	}
	checks, err := c.Doctor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ch := range checks {
		if strings.HasPrefix(ch.Name, "kubernetes: ") {
			n++
			if !ch.OK {
				t.Errorf("doctor: %+v", ch)
			}
		}
	}
	if n < 2 {
		t.Errorf("doctor has %d kubernetes checks: %+v", n, checks)
	}
}

// TestDaemonRestartKeepsPod kills the daemon with SIGKILL; the next
// command starts a new one, which re-adopts the sandbox: the same pod (by
// UID) still runs and answers, with the file written before.
func TestDaemonRestartKeepsPod(t *testing.T) {
	requireCluster(t)
	if _, err := ak(t, "sandbox", "create", "k8s-restart", "--backend", "kubernetes"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ak(t, "sandbox", "rm", "k8s-restart") })
	pod := podOf(t, "k8s-restart")
	uid := kube(t, "get", "pod", pod, "-o", "jsonpath={.metadata.uid}")
	if _, err := ak(t, "exec", "k8s-restart", "--", "sh", "-c", "echo survives > /root/k.txt"); err != nil {
		t.Fatal(err)
	}
	pid, err := home.DaemonPID()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon %d survived SIGKILL", pid)
		}
	}
	out, err := ak(t, "exec", "k8s-restart", "--", "cat", "/root/k.txt") // starts a new daemon
	if err != nil || out != "survives\n" {
		t.Errorf("exec after the daemon restart: %q %v", out, err)
	}
	if pid2, err := home.DaemonPID(); err != nil || pid2 == pid {
		t.Errorf("no new daemon: %d %v", pid2, err)
	}
	if got := kube(t, "get", "pod", pod, "-o", "jsonpath={.metadata.uid} {.status.phase}"); got != uid+" Running" {
		t.Errorf("the pod after the daemon restart: %q, want %q", got, uid+" Running")
	}
}
