package kubernetes

import (
	"errors"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func testBackend(opts Options) *Backend {
	if opts.Image == "" {
		opts.Image = "busybox:local"
	}
	if opts.AgentImage == "" {
		opts.AgentImage = "agent:test"
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	return &Backend{opts: opts}
}

func hostSpec() *backend.Spec {
	return &backend.Spec{
		ID: "0f0e0d0c-0000-4000-8000-000000000001", Name: "demo", Rootfs: backend.RootfsSpec{Host: true},
		Env:       []string{"PATH=/bin", "A=b=c"},
		Resources: backend.Resources{MemoryMB: 256, VCPUs: 2},
		Security:  backend.Security{Profile: "moderate", Network: "loopback", Seccomp: "default"},
	}
}

// TestPodSecurity pins the pod's security settings (docs/KUBERNETES.md
// says why each): no token, no host namespaces, seccomp RuntimeDefault,
// no escalation, every capability dropped and only root's default set
// added back, Guaranteed resources from the spec.
func TestPodSecurity(t *testing.T) {
	b := testBackend(Options{})
	pod, err := b.podFor(hostSpec(), "busybox:local", "")
	if err != nil {
		t.Fatal(err)
	}
	ps := pod.Spec
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("the service-account token is mounted")
	}
	if ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
		t.Error("service links are on")
	}
	if ps.HostNetwork || ps.HostPID || ps.HostIPC {
		t.Error("a host namespace is shared")
	}
	if ps.RestartPolicy != corev1.RestartPolicyNever || ps.RuntimeClassName != nil || ps.Hostname != "demo" {
		t.Errorf("restart %s, runtime class %v, hostname %q", ps.RestartPolicy, ps.RuntimeClassName, ps.Hostname)
	}
	for _, c := range append(ps.InitContainers, ps.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged == nil || *sc.Privileged {
			t.Errorf("%s: privilege escalation or privileged allowed", c.Name)
			continue
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: seccomp %v", c.Name, sc.SeccompProfile)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s: capabilities %v", c.Name, sc.Capabilities)
		}
		if c.Resources.Limits.Memory().IsZero() || !c.Resources.Limits.Memory().Equal(*c.Resources.Requests.Memory()) {
			t.Errorf("%s: resources %v", c.Name, c.Resources)
		}
	}
	init := ps.InitContainers[0]
	if !slices.Equal(init.SecurityContext.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}) || !*init.SecurityContext.ReadOnlyRootFilesystem || !slices.Contains(init.Command, "--remove-links") {
		t.Errorf("init container: %v %+v", init.Command, init.SecurityContext)
	}
	pod, err = testBackend(Options{KeepPodNetwork: true}).podFor(hostSpec(), "busybox:local", "")
	if err != nil {
		t.Fatal(err)
	}
	init = pod.Spec.InitContainers[0]
	if sc := init.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || len(sc.Capabilities.Add) > 0 || slices.Contains(init.Command, "--remove-links") {
		t.Errorf("init container keeping the pod network: %v %+v", init.Command, sc)
	}
	main := ps.Containers[0]
	if got := main.Resources.Limits.Memory().Value(); got != 256<<20 {
		t.Errorf("memory limit %d", got)
	}
	if got := main.Resources.Limits.Cpu().Value(); got != 2 {
		t.Errorf("cpu limit %d", got)
	}
	add := main.SecurityContext.Capabilities.Add
	for _, c := range add {
		if c == "SYS_ADMIN" || c == "NET_ADMIN" || c == "NET_RAW" || c == "SYS_PTRACE" || c[:4] == "CAP_" {
			t.Errorf("capability %s added", c)
		}
	}
	if !slices.Contains(add, "SETUID") {
		t.Errorf("root cannot switch users: %v", add)
	}
	if main.Command[0] != agentBinDir+"/agentkernel-agent" {
		t.Errorf("entrypoint %q", main.Command)
	}
	if e := main.Env; len(e) != 2 || e[1].Name != "A" || e[1].Value != "b=c" {
		t.Errorf("env %v", e)
	}
}

// TestPodNonRoot: an image whose user is a non-root uid runs as it, with
// runAsNonRoot and no capability.
func TestPodNonRoot(t *testing.T) {
	s := hostSpec()
	s.User = "1000:2000"
	pod, err := testBackend(Options{}).podFor(s, "img", "gvisor")
	if err != nil {
		t.Fatal(err)
	}
	sc := pod.Spec.Containers[0].SecurityContext
	if sc.RunAsUser == nil || *sc.RunAsUser != 1000 || *sc.RunAsGroup != 2000 || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || len(sc.Capabilities.Add) != 0 {
		t.Errorf("non-root image: %+v", sc)
	}
	if pod.Spec.RuntimeClassName == nil || *pod.Spec.RuntimeClassName != "gvisor" {
		t.Errorf("runtime class %v", pod.Spec.RuntimeClassName)
	}
}

// TestPodRefusals: what a pod cannot honour is refused, not weakened.
func TestPodRefusals(t *testing.T) {
	b := testBackend(Options{})
	s := hostSpec()
	s.Name = "Has_Underscore"
	if _, err := b.podFor(s, "img", ""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("host name that is no DNS label: %v", err)
	}
	s = hostSpec()
	s.Security = backend.Security{Profile: "restrictive", Network: "none", Seccomp: "strict", ReadOnlyRoot: true}
	if _, err := b.podFor(s, "img", ""); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("strict seccomp without a Localhost profile: %v", err)
	}
	b = testBackend(Options{StrictSeccompProfile: "agentkernel/strict.json"})
	pod, err := b.podFor(s, "img", "")
	if err != nil {
		t.Fatal(err)
	}
	sc := pod.Spec.Containers[0].SecurityContext
	if sc.SeccompProfile.Type != corev1.SeccompProfileTypeLocalhost || *sc.SeccompProfile.LocalhostProfile != "agentkernel/strict.json" || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("restrictive: %+v", sc)
	}
	s = hostSpec()
	s.Rootfs = backend.RootfsSpec{Layers: []string{"/x"}}
	if _, err := b.image(s); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("an image other than the configured one: %v", err)
	}
}

// TestNetworkPolicyDeniesAll: the policy selects only the sandbox's pod,
// covers both directions and allows nothing.
func TestNetworkPolicyDeniesAll(t *testing.T) {
	s := hostSpec()
	np := networkPolicyFor(s)
	if np.Spec.PodSelector.MatchLabels[LabelID] != s.ID || len(np.Spec.PodSelector.MatchLabels) != 1 {
		t.Errorf("selector %v", np.Spec.PodSelector)
	}
	if len(np.Spec.PolicyTypes) != 2 || len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 {
		t.Errorf("policy %+v", np.Spec)
	}
}

func TestRuntimeClassByProfile(t *testing.T) {
	b := testBackend(Options{RuntimeClass: "gvisor", RuntimeClasses: map[string]string{"restrictive": "kata", "permissive": ""}})
	for profile, want := range map[string]string{"moderate": "gvisor", "restrictive": "kata", "permissive": ""} {
		if got := b.runtimeClass(profile); got != want {
			t.Errorf("%s: %q, want %q", profile, got, want)
		}
	}
}

// TestPodKeptFiles: with a storage class, /root and /home are the
// sandbox's claim (kept across stops), not emptyDirs.
func TestPodKeptFiles(t *testing.T) {
	b := testBackend(Options{StorageClass: "fast", VolumeSizeMB: 2048})
	s := hostSpec()
	pod, err := b.podFor(s, "img", "")
	if err != nil {
		t.Fatal(err)
	}
	var claim string
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	mounts := map[string]string{}
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		mounts[m.MountPath] = m.Name + ":" + m.SubPath
	}
	if claim != PodName(s.ID) || mounts["/root"] != "files:root" || mounts["/home"] != "files:home" || mounts["/tmp"] != "tmp:" {
		t.Errorf("claim %q, mounts %v", claim, mounts)
	}
	c := b.claimFor(s)
	if *c.Spec.StorageClassName != "fast" || c.Spec.Resources.Requests.Storage().Value() != 2048<<20 || c.Labels[LabelID] != s.ID {
		t.Errorf("claim %+v", c)
	}
}
