package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	authnv1 "k8s.io/api/authentication/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/backend/backendtest"
	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// The cluster tests run against the cluster that scripts/k8s/test.sh
// (make test-k8s) brings up, named by these variables; without them they
// skip.
const (
	kubeconfigEnv = "AGENTKERNEL_K8S_KUBECONFIG"
	imageEnv      = "AGENTKERNEL_K8S_IMAGE"
	agentImageEnv = "AGENTKERNEL_K8S_AGENT_IMAGE"
)

func clusterBackend(t *testing.T, mutate func(*Options)) *Backend {
	t.Helper()
	kc := os.Getenv(kubeconfigEnv)
	if kc == "" {
		t.Skipf("no test cluster: %s is not set (make test-k8s sets it)", kubeconfigEnv)
	}
	opts := Options{Kubeconfig: kc, Image: os.Getenv(imageEnv), AgentImage: os.Getenv(agentImageEnv), StartTimeout: time.Minute,
		StorageClass: os.Getenv("AGENTKERNEL_K8S_STORAGE_CLASS")}
	if mutate != nil {
		mutate(&opts)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// clusterSpec is a fresh spec on the host image, as the daemon writes one.
func clusterSpec(t *testing.T) *backend.Spec {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return &backend.Spec{
		ID: newUUID(), Name: "k8s-test", Backend: "kubernetes", StateDir: t.TempDir(), AgentPath: exe,
		Rootfs:    backend.RootfsSpec{Host: true},
		Env:       []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hi"},
		Resources: backend.Resources{MemoryMB: 128, VCPUs: 1},
		Security:  backend.Security{Profile: "moderate", Network: "loopback", Seccomp: "default"},
	}
}

func startT(t *testing.T, b *Backend, s *backend.Spec) backend.Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst, err := b.Start(ctx, s)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		inst.Stop(context.Background())
		b.Cleanup(context.Background(), s)
		b.Destroy(context.Background(), s)
	})
	return inst
}

// TestClusterConformance runs the backend contract's suite, and the guest
// agent's through pods/portforward, on the cluster.
func TestClusterConformance(t *testing.T) {
	b := clusterBackend(t, nil)
	backendtest.Run(t, backendtest.Env{Backend: b, Spec: clusterSpec, AgentSuite: true})
}

// TestClusterPodSecurity checks from inside a running sandbox what the
// pod spec asked for: no service-account token, no new privileges, a
// seccomp filter, only the default capabilities; and that its deny-all
// NetworkPolicy exists while it runs and is gone after Stop.
func TestClusterPodSecurity(t *testing.T) {
	b := clusterBackend(t, nil)
	s := clusterSpec(t)
	inst := startT(t, b, s)
	out := backendtest.Sh(t, inst, `ls /var/run/secrets/kubernetes.io 2>&1; grep -E '^(NoNewPrivs|Seccomp|CapEff|CapBnd):' /proc/1/status; id -u`)
	for _, want := range []string{"No such file", "NoNewPrivs:\t1", "Seccomp:\t2", "CapEff:\t00000000200405fb", "CapBnd:\t00000000200405fb", "\n0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("inside the pod, want %q in:\n%s", want, out)
		}
	}
	ctx := context.Background()
	if _, err := b.client.NetworkingV1().NetworkPolicies(b.opts.Namespace).Get(ctx, PodName(s.ID), metav1.GetOptions{}); err != nil {
		t.Errorf("NetworkPolicy while running: %v", err)
	}
	// The pod's pids limit is the node's (the test kubelet's podPidsLimit);
	// the pod is Guaranteed, so its cgroup sits right under kubepods.
	p, err := b.client.CoreV1().Pods(b.opts.Namespace).Get(ctx, PodName(s.ID), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.QOSClass != "Guaranteed" {
		t.Errorf("QoS class %s", p.Status.QOSClass)
	}
	if m, _ := filepath.Glob("/sys/fs/cgroup/pids/kubepods/pod" + string(p.UID) + "/pids.max"); len(m) == 1 {
		if b, _ := os.ReadFile(m[0]); strings.TrimSpace(string(b)) != "1024" {
			t.Errorf("the pod's pids.max is %q, want 1024", b)
		}
	} else {
		t.Logf("the pod's pids cgroup is not on this host (%v): not checked", m)
	}
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.NetworkingV1().NetworkPolicies(b.opts.Namespace).Get(ctx, PodName(s.ID), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("NetworkPolicy after Stop: %v", err)
	}
}

// TestClusterMissingRuntimeClass: a profile whose RuntimeClass the cluster
// lacks is refused before anything is created, never run on the default
// runtime.
func TestClusterMissingRuntimeClass(t *testing.T) {
	b := clusterBackend(t, func(o *Options) { o.RuntimeClasses = map[string]string{"moderate": "agentkernel-no-such-class"} })
	s := clusterSpec(t)
	_, err := b.Start(context.Background(), s)
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), `RuntimeClass "agentkernel-no-such-class"`) {
		t.Fatalf("Start with a missing RuntimeClass: %v", err)
	}
	t.Log(err)
	if _, err := b.client.CoreV1().Pods(b.opts.Namespace).Get(context.Background(), PodName(s.ID), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a pod was made: %v", err)
	}
}

// TestClusterRuntimeClass: a profile's RuntimeClass that exists is the
// pod's.
func TestClusterRuntimeClass(t *testing.T) {
	const class = "agentkernel-test-runc"
	b := clusterBackend(t, func(o *Options) { o.RuntimeClass = class })
	ctx := context.Background()
	_, err := b.client.NodeV1().RuntimeClasses().Create(ctx, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: class}, Handler: "runc"}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.client.NodeV1().RuntimeClasses().Delete(context.Background(), class, metav1.DeleteOptions{}) })
	s := clusterSpec(t)
	inst := startT(t, b, s)
	p, err := b.client.CoreV1().Pods(b.opts.Namespace).Get(ctx, PodName(s.ID), metav1.GetOptions{})
	if err != nil || p.Spec.RuntimeClassName == nil || *p.Spec.RuntimeClassName != class {
		t.Fatalf("pod runtime class: %v", err)
	}
	if got := backendtest.Sh(t, inst, "echo $GREETING"); got != "hi\n" {
		t.Errorf("exec: %q", got)
	}
}

// TestClusterPodDeleted: a pod deleted behind the backend's back ends the
// instance with a reason that says so.
func TestClusterPodDeleted(t *testing.T) {
	b := clusterBackend(t, nil)
	s := clusterSpec(t)
	inst := startT(t, b, s)
	if err := b.client.CoreV1().Pods(b.opts.Namespace).Delete(context.Background(), PodName(s.ID), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inst.Exited():
	case <-time.After(time.Minute):
		t.Fatal("Exited not closed a minute after the pod was deleted")
	}
	err := inst.ExitError()
	if err == nil || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("exit error %v, want one that says the pod was deleted", err)
	}
	t.Log(err)
	if _, err := inst.DialAgent(context.Background()); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("DialAgent after the deletion: %v", err)
	}
}

// TestClusterLeastPrivilege runs a sandbox with exactly the access of
// deploy/kubernetes/rbac.yaml: a service account's token bound to that
// Role and ClusterRole, in a namespace of its own. doctor's permission
// check passes, and so do create, exec and stop.
func TestClusterLeastPrivilege(t *testing.T) {
	admin := clusterBackend(t, nil)
	kubectl := os.Getenv("AGENTKERNEL_K8S_KUBECTL")
	if kubectl == "" {
		t.Skip("AGENTKERNEL_K8S_KUBECTL is not set: this test drives the cluster with kubectl, which make test-k8s provides")
	}
	ctx := context.Background()
	const ns = "agentkernel"
	kc := func(args ...string) {
		t.Helper()
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", os.Getenv(kubeconfigEnv)}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v: %s", args, err, out)
		}
	}
	kc("create", "namespace", ns)
	t.Cleanup(func() {
		exec.Command(kubectl, "--kubeconfig", os.Getenv(kubeconfigEnv), "delete", "--wait=false", "-f", "../../../deploy/kubernetes/rbac.yaml").Run()
		exec.Command(kubectl, "--kubeconfig", os.Getenv(kubeconfigEnv), "delete", "namespace", ns, "--wait=false").Run()
	})
	kc("apply", "-f", "../../../deploy/kubernetes/rbac.yaml")
	exp := int64(3600)
	tok, err := admin.client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "agentkernel",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conf := clientcmdapi.NewConfig()
	conf.Clusters["c"] = &clientcmdapi.Cluster{Server: admin.cfg.Host, CertificateAuthorityData: admin.cfg.CAData}
	conf.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	conf.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa"}
	conf.CurrentContext = "c"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*conf, path); err != nil {
		t.Fatal(err)
	}
	b := clusterBackend(t, func(o *Options) { o.Kubeconfig, o.Namespace, o.RuntimeClass = path, ns, "" })
	// the Role can be slow to reach the authorizer's cache
	var checks []api.DoctorCheck
	for range 50 {
		if checks = b.Probe(ctx); len(checks) > 1 && checks[1].OK {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range checks {
		if !c.OK {
			t.Errorf("doctor with the documented Role: %+v", c)
		}
	}
	if _, err := b.client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); err == nil {
		t.Error("the documented Role may list secrets")
	}
	s := clusterSpec(t)
	inst := startT(t, b, s)
	if got := backendtest.Sh(t, inst, "echo $GREETING"); got != "hi\n" {
		t.Errorf("exec with the documented Role: %q", got)
	}
	if err := inst.Stop(ctx); err != nil {
		t.Errorf("Stop with the documented Role: %v", err)
	}
}

// TestClusterRestrictive runs the restrictive profile: the strict seccomp
// filter as a Localhost profile written where the test node's kubelet
// looks (AGENTKERNEL_K8S_SECCOMP_DIR), a read-only root and root's minimal
// capabilities.
func TestClusterRestrictive(t *testing.T) {
	dir := os.Getenv("AGENTKERNEL_K8S_SECCOMP_DIR")
	if dir == "" {
		t.Skip("AGENTKERNEL_K8S_SECCOMP_DIR is not set (make test-k8s sets it to the node's seccomp directory)")
	}
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL"}
	sc, err := oci.Seccomp(oci.SeccompStrict, &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}})
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "agentkernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "agentkernel", "strict.json"), js, 0o644); err != nil {
		t.Fatal(err)
	}
	b := clusterBackend(t, func(o *Options) { o.StrictSeccompProfile = "agentkernel/strict.json" })
	s := clusterSpec(t)
	s.Security = backend.Security{Profile: "restrictive", Network: "none", Seccomp: "strict", ReadOnlyRoot: true, Capabilities: caps}
	inst := startT(t, b, s)
	out := backendtest.Sh(t, inst, `grep -E '^(Seccomp|CapEff):' /proc/1/status; touch /x 2>/dev/null && echo root-writable; touch /tmp/x && echo tmp-writable; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '`)
	for _, want := range []string{"Seccomp:\t2", "CapEff:\t000000000000002b", "tmp-writable", "\nlo\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("restrictive sandbox: want %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "root-writable") {
		t.Errorf("the root filesystem is writable:\n%s", out)
	}
}
