package daemonconf

import (
	"errors"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestBackendsKubernetes(t *testing.T) {
	f, err := Decode([]byte(`
[backends.kubernetes]
kubeconfig = "/etc/ak/kubeconfig"
context = "prod"
namespace = "sandboxes"
runtime_class = "gvisor"
runtime_classes = { restrictive = "kata" }
image_pull_secret = "regcred"
image = "debian:bookworm"
agent_image = "registry.example/agent:v1"
`))
	if err != nil {
		t.Fatal(err)
	}
	k := f.Backends.Kubernetes
	if k == nil || k.Kubeconfig != "/etc/ak/kubeconfig" || k.Context != "prod" || k.Namespace != "sandboxes" ||
		k.RuntimeClass != "gvisor" || k.RuntimeClasses["restrictive"] != "kata" || k.ImagePullSecret != "regcred" ||
		k.Image != "debian:bookworm" || k.AgentImage != "registry.example/agent:v1" {
		t.Errorf("decoded %+v", k)
	}
	if f, err := Decode(nil); err != nil || f.Backends.Kubernetes != nil {
		t.Errorf("no section: %+v %v", f.Backends, err)
	}
	_, err = Decode([]byte("[backends.kubernetes]\nnamepsace = \"x\"\n"))
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "namepsace") {
		t.Errorf("a misspelt key: %v", err)
	}
}
