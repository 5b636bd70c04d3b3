package kubernetes

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// Access is every verb the backend uses, on what, in its namespace; the
// least-privilege Role of docs/KUBERNETES.md grants exactly these (and
// RuntimeClasses, which are cluster-scoped, get only).
var Access = []struct{ Group, Resource, Verb string }{
	{"", "pods", "create"}, {"", "pods", "get"}, {"", "pods", "list"}, {"", "pods", "watch"}, {"", "pods", "delete"},
	{"", "pods/portforward", "create"},
	{"networking.k8s.io", "networkpolicies", "create"}, {"networking.k8s.io", "networkpolicies", "delete"},
}

// volumeAccess is what storage_class adds to Access.
var volumeAccess = []struct{ Group, Resource, Verb string }{
	{"", "persistentvolumeclaims", "create"}, {"", "persistentvolumeclaims", "delete"},
}

// Probe reports whether the configured cluster can run sandboxes: the API
// server answers, the credentials may do what the backend does in its
// namespace, and the RuntimeClasses the configuration names exist. Each
// failed check carries a fix. The daemon's doctor command shows them.
func (b *Backend) Probe(ctx context.Context) []api.DoctorCheck {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var checks []api.DoctorCheck
	add := func(name string, ok bool, detail, fix string) {
		c := api.DoctorCheck{Name: "kubernetes: " + name, OK: ok, Detail: detail}
		if !ok {
			c.Fix = fix
		}
		checks = append(checks, c)
	}
	v, err := b.client.Discovery().ServerVersion()
	if err != nil {
		add("cluster", false, err.Error(), "check [backends.kubernetes] kubeconfig and context in daemon.toml, and that the API server is up")
		return checks
	}
	add("cluster", true, fmt.Sprintf("%s, API server %s", b.cfg.Host, v.GitVersion), "")
	var denied []string
	access := Access
	if b.opts.StorageClass != "" {
		access = append(slices.Clone(Access), volumeAccess...)
	}
	for _, a := range access {
		r, err := b.client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Namespace: b.opts.Namespace, Group: a.Group, Resource: resourceOnly(a.Resource), Subresource: subresource(a.Resource), Verb: a.Verb,
			}},
		}, metav1.CreateOptions{})
		if err != nil || !r.Status.Allowed {
			denied = append(denied, a.Verb+" "+a.Resource)
		}
	}
	add("permissions", len(denied) == 0, fmt.Sprintf("in namespace %s: %d of %d verbs allowed %v", b.opts.Namespace, len(access)-len(denied), len(access), denied),
		"bind the daemon's identity to the Role in docs/KUBERNETES.md (pods, pods/portforward, networkpolicies in its namespace)")
	classes := []string{b.opts.RuntimeClass}
	for _, c := range b.opts.RuntimeClasses {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	for _, c := range slices.Compact(classes) {
		if c == "" {
			continue
		}
		_, err := b.client.NodeV1().RuntimeClasses().Get(ctx, c, metav1.GetOptions{})
		detail := "present"
		if err != nil {
			detail = err.Error()
		}
		add("RuntimeClass "+c, err == nil, detail, "install the runtime's RuntimeClass on the cluster (gVisor: handler runsc; Kata: kata), or change runtime_class in daemon.toml; sandboxes needing it are refused until then")
	}
	return checks
}

func resourceOnly(r string) string { res, _, _ := strings.Cut(r, "/"); return res }

func subresource(r string) string { _, sub, _ := strings.Cut(r, "/"); return sub }
