// Package kubernetes is the backend that runs each sandbox as a Pod on a
// Kubernetes cluster (issue 17; docs/KUBERNETES.md).
//
// A sandbox is one pod in the configured namespace, with a NetworkPolicy
// of its own that denies all traffic. An init container copies the static
// guest agent from its own image into an emptyDir; the sandbox container
// runs the sandbox image with that agent as its entrypoint, listening on
// the pod's loopback. The daemon never routes to pod IPs: it reaches the
// agent through the API server's pods/portforward subresource. client-go
// stays inside this package.
package kubernetes

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Options configure the backend. Zero values are the documented defaults.
type Options struct {
	// Kubeconfig and Context select the cluster; an empty Kubeconfig
	// means the in-cluster config (the daemon runs in a pod), an empty
	// Context the kubeconfig's current one.
	Kubeconfig string
	Context    string
	// Namespace holds the sandboxes' pods and policies; default "default".
	Namespace string
	// RuntimeClass is the pods' RuntimeClass ("" for the cluster's
	// default runtime); RuntimeClasses overrides it per security profile.
	// Start refuses a class the cluster does not have.
	RuntimeClass   string
	RuntimeClasses map[string]string
	// Image is the pod image of a sandbox on the host image (the daemon's
	// default). AgentImage holds the static /agentkernel-agent and runs
	// as the init container that copies it into the pod. Both are pulled
	// by the node (IfNotPresent), with ImagePullSecret when set.
	Image           string
	AgentImage      string
	ImagePullSecret string
	// StrictSeccompProfile is a Localhost seccomp profile on the nodes
	// (relative to the kubelet's seccomp directory) for profiles that ask
	// for the strict filter; without it they are refused.
	StrictSeccompProfile string
	// StorageClass, when set, gives each sandbox a PersistentVolumeClaim
	// of that class (VolumeSizeMB, default 1024) for its writable /root
	// and /home, kept across stops and deleted when the sandbox is
	// removed. Without it they are emptyDirs, lost at every stop.
	StorageClass string
	VolumeSizeMB int
	// KeepPodNetwork leaves the pod's interfaces to a sandbox without a
	// network, fenced by its NetworkPolicy alone: for namespaces whose
	// Pod Security level forbids NET_ADMIN even in an init container.
	// By default the init container deletes all but lo, so the sandbox
	// has no network whether or not the cluster enforces NetworkPolicy.
	KeepPodNetwork bool
	// StartTimeout bounds the wait for the pod and its agent; default 2m.
	StartTimeout time.Duration
}

// Backend runs sandboxes as pods. Create it with New; it holds only a
// client and is safe for concurrent use.
type Backend struct {
	opts   Options
	cfg    *rest.Config
	client k8s.Interface
}

// New checks opts and builds a client for the cluster they name. It does
// not contact the cluster.
func New(opts Options) (*Backend, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.VolumeSizeMB == 0 {
		opts.VolumeSizeMB = 1024
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	if opts.Image == "" || opts.AgentImage == "" {
		return nil, fmt.Errorf("kubernetes: %w: image and agent_image are required", errdefs.ErrInvalidArgument)
	}
	var cfg *rest.Config
	var err error
	if opts.Kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: opts.Kubeconfig},
			&clientcmd.ConfigOverrides{CurrentContext: opts.Context}).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w: cluster config: %v", errdefs.ErrInvalidArgument, err)
	}
	cfg.UserAgent = "agentkernel"
	client, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: client: %w", err)
	}
	return &Backend{opts: opts, cfg: cfg, client: client}, nil
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return "kubernetes" }

// Capabilities implements backend.Backend: no pause, no checkpoint, no
// gateway yet (the daemon gives its sandboxes no network), no resize.
// The boundary is a pod under the configured RuntimeClass's runtime.
func (b *Backend) Capabilities() backend.Capabilities {
	iso := "pod"
	if b.opts.RuntimeClass != "" {
		iso += " (RuntimeClass " + b.opts.RuntimeClass + ")"
	}
	return backend.Capabilities{Isolation: iso}
}

// Namespace is where the backend's pods live.
func (b *Backend) Namespace() string { return b.opts.Namespace }

// runtimeClass is the RuntimeClass for a security profile.
func (b *Backend) runtimeClass(profile string) string {
	if c, ok := b.opts.RuntimeClasses[profile]; ok {
		return c
	}
	return b.opts.RuntimeClass
}

// image is the pod image for spec: the configured one for the host image.
// Other images would need a name the cluster can pull, which the spec does
// not carry yet, so they are refused.
func (b *Backend) image(spec *backend.Spec) (string, error) {
	if !spec.Rootfs.Host {
		return "", fmt.Errorf("%w: the kubernetes backend runs only its configured image (%s) for now; create the sandbox on the default image",
			errdefs.ErrNotImplemented, b.opts.Image)
	}
	return b.opts.Image, nil
}

// Start implements backend.Backend: it creates the sandbox's
// NetworkPolicy, then its pod, waits for the pod to run and for the agent
// to answer through the API server. On error both are deleted.
func (b *Backend) Start(ctx context.Context, spec *backend.Spec) (_ backend.Instance, retErr error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Security.Network == "gateway" {
		return nil, fmt.Errorf("kubernetes: %w: the network gateway is not built for this backend yet", errdefs.ErrFailedPrecondition)
	}
	if len(spec.Mounts) > 0 {
		return nil, fmt.Errorf("kubernetes: %w: host directories cannot be mounted into a pod on a cluster", errdefs.ErrInvalidArgument)
	}
	img, err := b.image(spec)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	rc := b.runtimeClass(spec.Security.Profile)
	pod, err := b.podFor(spec, img, rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	if rc != "" {
		if _, err := b.client.NodeV1().RuntimeClasses().Get(ctx, rc, metav1.GetOptions{}); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("kubernetes: %w: RuntimeClass %q (profile %s) does not exist on the cluster; refusing to run the sandbox without it",
					errdefs.ErrFailedPrecondition, rc, spec.Security.Profile)
			}
			return nil, fmt.Errorf("kubernetes: RuntimeClass %q: %w", rc, classify(err))
		}
	}
	defer func() {
		if retErr != nil {
			b.Cleanup(context.WithoutCancel(ctx), spec)
		}
	}()
	// The policy first: the pod never runs unfenced.
	if _, err := b.client.NetworkingV1().NetworkPolicies(b.opts.Namespace).Create(ctx, networkPolicyFor(spec), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("kubernetes: create NetworkPolicy: %w", classify(err))
	}
	if b.opts.StorageClass != "" {
		// Kept across stops: an existing claim is this sandbox's files.
		if _, err := b.client.CoreV1().PersistentVolumeClaims(b.opts.Namespace).Create(ctx, b.claimFor(spec), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("kubernetes: create PersistentVolumeClaim: %w", classify(err))
		}
	}
	created, err := b.client.CoreV1().Pods(b.opts.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: create pod: %w", classify(err))
	}
	inst := newInstance(b, created)
	defer func() {
		if retErr != nil {
			inst.Stop(context.WithoutCancel(ctx))
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, b.opts.StartTimeout)
	defer cancel()
	if err := inst.waitRunning(ctx); err != nil {
		return nil, err
	}
	go inst.watch()
	if err := inst.waitAgent(ctx); err != nil {
		return nil, err
	}
	return inst, nil
}

// waitAgent dials the agent until it says hello: the pod runs before its
// agent listens.
func (i *Instance) waitAgent(ctx context.Context) error {
	for {
		conn, err := i.DialAgent(ctx)
		if err == nil {
			var c *agentproto.Client
			if c, err = agentproto.NewClient(conn); err == nil {
				c.Close()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubernetes: %w: pod %s: the agent does not answer: %v", errdefs.ErrUnavailable, i.pod, err)
		case <-i.exited:
			return i.ExitError()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Cleanup implements backend.Backend: it deletes the sandbox's pod and
// NetworkPolicy if any are left. Idempotent.
func (b *Backend) Cleanup(ctx context.Context, spec *backend.Spec) error {
	zero := int64(0)
	err := b.client.CoreV1().Pods(b.opts.Namespace).Delete(ctx, PodName(spec.ID), metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: delete pod: %w", classify(err))
	}
	err = b.client.NetworkingV1().NetworkPolicies(b.opts.Namespace).Delete(ctx, PodName(spec.ID), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: delete NetworkPolicy: %w", classify(err))
	}
	return nil
}

// Destroy implements backend.Destroyer: it deletes the sandbox's
// PersistentVolumeClaim, and so its files, once the sandbox is removed.
func (b *Backend) Destroy(ctx context.Context, spec *backend.Spec) error {
	if b.opts.StorageClass == "" {
		return nil
	}
	err := b.client.CoreV1().PersistentVolumeClaims(b.opts.Namespace).Delete(ctx, PodName(spec.ID), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: delete PersistentVolumeClaim: %w", classify(err))
	}
	return nil
}

// classify maps an API error to our error classes.
func classify(err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%w: %v", errdefs.ErrNotFound, err)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%w: %v", errdefs.ErrAlreadyExists, err)
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: %v", errdefs.ErrPermissionDenied, err)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
	}
	return fmt.Errorf("%w: %v", errdefs.ErrUnavailable, err)
}
