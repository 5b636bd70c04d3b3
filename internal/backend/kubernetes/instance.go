package kubernetes

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Instance is one sandbox's pod, made by Backend.Start and owned by the
// supervisor that called it. It owns a watch goroutine (ended by Stop or
// by the pod's end) and the portforward connection to the agent.
type Instance struct {
	b   *Backend
	pod string
	uid types.UID // the pod we created: a namesake made later is not ours
	fwd *forwarder

	life   context.Context // cancelled by Stop
	cancel context.CancelFunc

	once    sync.Once
	exited  chan struct{}
	mu      sync.Mutex
	exitErr error // guarded by mu
}

func newInstance(b *Backend, pod *corev1.Pod) *Instance {
	life, cancel := context.WithCancel(context.Background())
	i := &Instance{b: b, pod: pod.Name, uid: pod.UID, life: life, cancel: cancel, exited: make(chan struct{})}
	i.fwd = &forwarder{
		cfg:  b.cfg,
		port: AgentPort,
		life: life,
		url: func() (string, error) {
			return b.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(b.opts.Namespace).
				Name(pod.Name).SubResource("portforward").URL().String(), nil
		},
	}
	return i
}

// exit records why the sandbox ended, once, and closes exited.
func (i *Instance) exit(err error) {
	i.once.Do(func() {
		i.mu.Lock()
		i.exitErr = err
		i.mu.Unlock()
		close(i.exited)
		i.fwd.Close()
	})
}

// waitRunning waits for the pod to reach Running: scheduled, images
// present, the init container done, the sandbox container started. A pod
// that cannot get there (an image that cannot be pulled, a RuntimeClass
// handler the node lacks) fails with the kubelet's reason.
func (i *Instance) waitRunning(ctx context.Context) error {
	pods := i.b.client.CoreV1().Pods(i.b.opts.Namespace)
	var last *corev1.Pod
	for {
		p, err := pods.Get(ctx, i.pod, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() != nil && last != nil {
				return fmt.Errorf("kubernetes: %w: pod %s not running in time: %s", errdefs.ErrUnavailable, i.pod, reason(last))
			}
			return fmt.Errorf("kubernetes: pod %s: %w", i.pod, classify(err))
		}
		last = p
		switch p.Status.Phase {
		case corev1.PodRunning:
			return nil
		case corev1.PodFailed, corev1.PodSucceeded:
			return fmt.Errorf("kubernetes: %w: pod %s ended before it ran: %s", errdefs.ErrUnavailable, i.pod, reason(p))
		}
		if why := stuck(p); why != "" {
			return fmt.Errorf("kubernetes: %w: pod %s cannot start: %s", errdefs.ErrFailedPrecondition, i.pod, why)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubernetes: %w: pod %s not running in time: %s", errdefs.ErrUnavailable, i.pod, reason(p))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stuck names a waiting reason that will not clear by itself.
func stuck(p *corev1.Pod) string {
	for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
				return fmt.Sprintf("container %s: %s: %s", cs.Name, w.Reason, w.Message)
			}
		}
	}
	return ""
}

// watch follows the pod until it ends, is deleted or is replaced, and then
// records why: what the cluster did to the sandbox is its exit reason.
func (i *Instance) watch() {
	pods := i.b.client.CoreV1().Pods(i.b.opts.Namespace)
	sel := fields.OneTermEqualSelector("metadata.name", i.pod).String()
	for i.life.Err() == nil {
		// List then watch from its version, so that nothing between the
		// two is missed.
		list, err := pods.List(i.life, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			if !sleepCtx(i.life, time.Second) {
				return
			}
			continue
		}
		if done := i.observe(list.Items); done {
			return
		}
		w, err := pods.Watch(i.life, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
		if err != nil {
			if !sleepCtx(i.life, time.Second) {
				return
			}
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Deleted {
				if p, ok := ev.Object.(*corev1.Pod); ok && p.UID == i.uid {
					w.Stop()
					i.exit(i.deletedErr(p))
					return
				}
				continue
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue // an error event: relist
			}
			if i.observe([]corev1.Pod{*p}) {
				w.Stop()
				return
			}
		}
	}
}

// observe checks the listed pods (none, or ours or a namesake) and ends
// the instance when its pod is gone or over; it says whether it did.
func (i *Instance) observe(items []corev1.Pod) bool {
	var p *corev1.Pod
	for n := range items {
		if items[n].UID == i.uid {
			p = &items[n]
		}
	}
	switch {
	case p == nil:
		i.exit(i.deletedErr(&corev1.Pod{}))
		return true
	case p.DeletionTimestamp != nil:
		i.exit(i.deletedErr(p))
		return true
	case p.Status.Phase == corev1.PodSucceeded:
		i.exit(nil) // the agent exited 0: a clean shutdown
		return true
	case p.Status.Phase == corev1.PodFailed:
		i.exit(fmt.Errorf("kubernetes: %w: pod %s failed: %s", errdefs.ErrUnavailable, i.pod, reason(p)))
		return true
	}
	return false
}

// deletedErr says the pod is being deleted; by Stop, it is no failure.
func (i *Instance) deletedErr(p *corev1.Pod) error {
	if i.life.Err() != nil {
		return nil
	}
	msg := fmt.Sprintf("pod %s was deleted behind agentkernel's back", i.pod)
	if p.Status.Reason != "" {
		msg = fmt.Sprintf("pod %s was deleted: %s", i.pod, reason(p))
	}
	return fmt.Errorf("kubernetes: %w: %s", errdefs.ErrUnavailable, msg)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// reason is what the pod's status says about why it is where it is.
func reason(p *corev1.Pod) string {
	s := string(p.Status.Phase)
	if p.Status.Reason != "" {
		s += " (" + p.Status.Reason + ": " + p.Status.Message + ")"
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message != "" {
			s += "; unschedulable: " + c.Message
		}
	}
	for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if t := cs.State.Terminated; t != nil {
			s += fmt.Sprintf("; container %s: %s, exit %d", cs.Name, t.Reason, t.ExitCode)
			if t.Message != "" {
				s += ": " + t.Message
			}
		}
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			s += fmt.Sprintf("; container %s waiting: %s %s", cs.Name, w.Reason, w.Message)
		}
	}
	return s
}

// DialAgent implements backend.Instance: a stream to the agent's port
// through pods/portforward.
func (i *Instance) DialAgent(ctx context.Context) (net.Conn, error) {
	select {
	case <-i.exited:
		return nil, fmt.Errorf("%w: pod %s has ended", errdefs.ErrUnavailable, i.pod)
	default:
	}
	c, err := i.fwd.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: pod %s: %w", i.pod, err)
	}
	return c, nil
}

// Exited implements backend.Instance.
func (i *Instance) Exited() <-chan struct{} { return i.exited }

// ExitError implements backend.Instance.
func (i *Instance) ExitError() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.exitErr
}

// Stop implements backend.Instance: it deletes the pod (grace 0: the
// caller has asked the agent to shut down already), waits until it is
// gone and deletes its NetworkPolicy. Idempotent.
func (i *Instance) Stop(ctx context.Context) error {
	i.cancel()
	pods := i.b.client.CoreV1().Pods(i.b.opts.Namespace)
	zero := int64(0)
	pre := metav1.Preconditions{UID: &i.uid}
	err := pods.Delete(ctx, i.pod, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &pre})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("kubernetes: delete pod %s: %w", i.pod, classify(err))
	}
	for {
		p, err := pods.Get(ctx, i.pod, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && p.UID != i.uid) {
			break
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return fmt.Errorf("kubernetes: pod %s still there: %w", i.pod, ctx.Err())
		}
	}
	err = i.b.client.NetworkingV1().NetworkPolicies(i.b.opts.Namespace).Delete(ctx, i.pod, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: delete NetworkPolicy %s: %w", i.pod, classify(err))
	}
	i.exit(nil)
	return nil
}
