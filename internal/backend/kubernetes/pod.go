package kubernetes

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/oci"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Labels on every object the backend creates; a restarted daemon and
// Cleanup find a sandbox's objects by them.
const (
	LabelManaged = "agentkernel.dev/managed"
	LabelID      = "agentkernel.dev/sandbox-id"
)

// AgentPort is the guest agent's TCP port on the pod's loopback. Only the
// pod itself and pods/portforward reach it: the NetworkPolicy admits no
// ingress.
const AgentPort = 7070

// agentBinDir is where the init container copies the agent: an emptyDir
// the sandbox container mounts read-only.
const agentBinDir = backend.AgentDir + "/bin"

// PodName is the pod (and NetworkPolicy) that backs sandbox id.
func PodName(id string) string { return "agentkernel-" + strings.ToLower(id) }

// podHostname is the sandbox's host name as a pod can have it: a DNS-1123
// label. A name that is not one (upper case, '_' or '.') is refused rather
// than changed, so that `hostname` never says something else than asked.
func podHostname(spec *backend.Spec) (string, error) {
	h := spec.Hostname
	if h == "" {
		h = spec.Name
	}
	if errs := validation.IsDNS1123Label(h); len(errs) > 0 {
		return "", fmt.Errorf("%w: host name %q cannot be a pod's: %s", errdefs.ErrInvalidArgument, h, strings.Join(errs, "; "))
	}
	return h, nil
}

// rootUser says whether the image's user is root (or unset, which is root).
// A named user could be anyone: only its numeric id, which needs the
// image's /etc/passwd, would tell.
func rootUser(user string) (uid int64, root bool, known bool) {
	name, _, _ := strings.Cut(user, ":")
	switch name {
	case "", "0", "root":
		return 0, true, true
	}
	n, err := strconv.ParseInt(name, 10, 64)
	if err != nil {
		return 0, false, false
	}
	return n, n == 0, true
}

// securityContext is the sandbox container's: no privilege escalation,
// the runtime's default seccomp filter (or the strict Localhost profile),
// every capability dropped. A root image gets back exactly the set root
// keeps on the container backend (the profile's, which lets the agent
// switch to other users), since the conformance semantics need root to
// own its files and to run commands as other users; an image whose user
// is a non-root uid runs as that uid with runAsNonRoot and no capability
// at all. The root filesystem is read-only when the profile says so.
func (b *Backend) securityContext(spec *backend.Spec) (*corev1.SecurityContext, error) {
	no := false
	// The host image is a read-only view with writable /tmp, /root and
	// /home on every backend: here the image's root, read-only, with
	// emptyDirs there (podFor).
	ro := spec.Security.ReadOnlyRoot || spec.Rootfs.Host
	sc := &corev1.SecurityContext{
		AllowPrivilegeEscalation: &no,
		Privileged:               &no,
		ReadOnlyRootFilesystem:   &ro,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	switch spec.Security.Seccomp {
	case "", oci.SeccompDefault:
		sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	case oci.SeccompStrict:
		if b.opts.StrictSeccompProfile == "" {
			return nil, fmt.Errorf("%w: profile %s needs the strict seccomp filter, and the kubernetes backend has none: set [backends.kubernetes] strict_seccomp_profile to a Localhost profile on the nodes (docs/KUBERNETES.md)",
				errdefs.ErrFailedPrecondition, spec.Security.Profile)
		}
		p := b.opts.StrictSeccompProfile
		sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: &p}
	default:
		return nil, fmt.Errorf("%w: unknown seccomp profile %q", errdefs.ErrInvalidArgument, spec.Security.Seccomp)
	}
	// A named user could be anyone: the agent resolves it per command from
	// the image's /etc/passwd, so such an image runs as root like one
	// whose user is root, with the profile's capabilities and no more.
	if uid, root, known := rootUser(spec.User); known && !root {
		yes := true
		gid := uid
		if _, g, ok := strings.Cut(spec.User, ":"); ok {
			if n, err := strconv.ParseInt(g, 10, 64); err == nil {
				gid = n
			}
		}
		sc.RunAsUser, sc.RunAsGroup, sc.RunAsNonRoot = &uid, &gid, &yes
		return sc, nil
	}
	caps, err := oci.Capabilities(spec.Security.Capabilities)
	if err != nil {
		return nil, err
	}
	for _, c := range caps {
		sc.Capabilities.Add = append(sc.Capabilities.Add, corev1.Capability(strings.TrimPrefix(c, "CAP_")))
	}
	return sc, nil
}

// podFor is the sandbox's pod. See docs/KUBERNETES.md for why each
// setting.
func (b *Backend) podFor(spec *backend.Spec, image, runtimeClass string) (*corev1.Pod, error) {
	hostname, err := podHostname(spec)
	if err != nil {
		return nil, err
	}
	sec, err := b.securityContext(spec)
	if err != nil {
		return nil, err
	}
	mem := spec.Resources.MemoryMB
	if mem == 0 {
		mem = 512
	}
	cpus := spec.Resources.VCPUs
	if cpus == 0 {
		cpus = 1
	}
	// Requests equal limits: the pod is Guaranteed, so the scheduler
	// reserves what the sandbox may use and the kubelet evicts it last.
	limits := corev1.ResourceList{
		corev1.ResourceMemory: *resource.NewQuantity(int64(mem)<<20, resource.BinarySI),
		corev1.ResourceCPU:    *resource.NewQuantity(int64(cpus), resource.DecimalSI),
	}
	initLimits := corev1.ResourceList{
		corev1.ResourceMemory: *resource.NewQuantity(64<<20, resource.BinarySI),
		corev1.ResourceCPU:    *resource.NewMilliQuantity(100, resource.DecimalSI),
	}
	no, yes := false, true
	grace := int64(2)
	initUID := int64(65534)
	initSec := &corev1.SecurityContext{
		AllowPrivilegeEscalation: &no,
		Privileged:               &no,
		ReadOnlyRootFilesystem:   &yes,
		RunAsUser:                &initUID,
		RunAsGroup:               &initUID,
		RunAsNonRoot:             &yes,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	// The agent is static and copies itself: the agent image needs
	// nothing else, not even a shell. The copy is mode 0755, so any user
	// the sandbox runs as can run it, and no fsGroup chown is needed.
	initCmd := []string{"/agentkernel-agent", "--install", agentBinDir + "/agentkernel-agent"}
	if !b.opts.KeepPodNetwork {
		// A sandbox without a network gets none: the init container,
		// which shares the pod's network namespace and runs only our
		// binary, deletes every interface but lo before the sandbox
		// starts. That takes root with NET_ADMIN, for the init
		// container alone.
		initCmd = []string{"/agentkernel-agent", "--remove-links", "--install", agentBinDir + "/agentkernel-agent"}
		root := int64(0)
		initSec.RunAsUser, initSec.RunAsGroup, initSec.RunAsNonRoot = &root, &root, &no
		initSec.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   PodName(spec.ID),
			Labels: map[string]string{LabelManaged: "true", LabelID: spec.ID},
			Annotations: map[string]string{
				"agentkernel.dev/sandbox-name": spec.Name,
				"agentkernel.dev/profile":      spec.Security.Profile,
			},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			TerminationGracePeriodSeconds: &grace,
			Hostname:                      hostname,
			HostNetwork:                   false,
			HostPID:                       false,
			HostIPC:                       false,
			Volumes: []corev1.Volume{
				{Name: "agent", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			InitContainers: []corev1.Container{{
				Name:            "agent",
				Image:           b.opts.AgentImage,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         initCmd,
				VolumeMounts:    []corev1.VolumeMount{{Name: "agent", MountPath: agentBinDir}},
				Resources:       corev1.ResourceRequirements{Limits: initLimits, Requests: initLimits},
				SecurityContext: initSec,
			}},
			Containers: []corev1.Container{{
				Name:            "sandbox",
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{agentBinDir + "/agentkernel-agent", "--listen", "tcp:127.0.0.1:" + strconv.Itoa(AgentPort)},
				Env:             envVars(spec.Env),
				WorkingDir:      spec.Workdir,
				Resources:       corev1.ResourceRequirements{Limits: limits, Requests: limits},
				VolumeMounts: []corev1.VolumeMount{
					{Name: "agent", MountPath: agentBinDir, ReadOnly: true},
					{Name: "tmp", MountPath: "/tmp"},
				},
				SecurityContext: sec,
			}},
		},
	}
	if spec.Rootfs.Host {
		c := &pod.Spec.Containers[0]
		if b.opts.StorageClass != "" {
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "files", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: PodName(spec.ID)}}})
			for _, d := range []string{"root", "home"} {
				c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "files", MountPath: "/" + d, SubPath: d})
			}
		} else {
			for _, d := range []string{"root", "home"} {
				pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: d, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
				c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: d, MountPath: "/" + d})
			}
		}
	}
	if runtimeClass != "" {
		pod.Spec.RuntimeClassName = &runtimeClass
	}
	if b.opts.ImagePullSecret != "" {
		pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: b.opts.ImagePullSecret}}
	}
	return pod, nil
}

// networkPolicyFor denies the sandbox's pod all ingress and all egress: it
// selects only that pod and lists no rule. The agent stays reachable,
// because pods/portforward enters the pod's network namespace from the
// node and dials its loopback, which no NetworkPolicy governs. Egress
// through a gateway (issue 17) would add one egress rule to the gateway.
func networkPolicyFor(spec *backend.Spec) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:   PodName(spec.ID),
			Labels: map[string]string{LabelManaged: "true", LabelID: spec.ID},
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{LabelID: spec.ID}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
}

func envVars(env []string) []corev1.EnvVar {
	var out []corev1.EnvVar
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out = append(out, corev1.EnvVar{Name: k, Value: v})
		}
	}
	return out
}

// claimFor is the sandbox's PersistentVolumeClaim: its /root and /home,
// kept across stops (Options.StorageClass).
func (b *Backend) claimFor(spec *backend.Spec) *corev1.PersistentVolumeClaim {
	class := b.opts.StorageClass
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name:   PodName(spec.ID),
			Labels: map[string]string{LabelManaged: "true", LabelID: spec.ID},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &class,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: *resource.NewQuantity(int64(b.opts.VolumeSizeMB)<<20, resource.BinarySI),
			}},
		},
	}
}
