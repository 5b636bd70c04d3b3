package agents

import (
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/image/dockerfile"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
)

// TestChains: every agent's image chain has valid names, Dockerfiles the
// builder's parser accepts, presets the policy knows, and a tag that
// changes with its inputs.
func TestChains(t *testing.T) {
	for _, a := range All() {
		chain := Chain(a)
		if len(chain) != 3 || chain[0].Debian == nil || chain[2].Alias != "agentkernel/"+a.Name {
			t.Fatalf("%s: chain %+v", a.Name, chain)
		}
		for _, s := range chain {
			if err := image.ValidateName(s.Name); err != nil {
				t.Errorf("%s: %v", s.Name, err)
			}
			if s.Dockerfile != "" {
				if _, err := dockerfile.Parse([]byte(s.Dockerfile)); err != nil {
					t.Errorf("%s: %v\n%s", s.Name, err, s.Dockerfile)
				}
			}
			for _, p := range s.Presets {
				if _, err := policy.Preset(p); err != nil {
					t.Errorf("%s: %v", s.Name, err)
				}
			}
		}
		df := chain[2].Dockerfile
		for _, want := range []string{a.Package + "@" + a.Version, "USER developer", "agentkernel.agent.version=" + a.Version} {
			if !strings.Contains(df, want) {
				t.Errorf("%s: no %q in\n%s", a.Name, want, df)
			}
		}
		if _, err := policy.Preset(a.Preset); err != nil {
			t.Errorf("%s: preset: %v", a.Name, err)
		}
		if argv := a.Unattended([]string{"write", "x"}); argv[0] != a.Binary {
			t.Errorf("%s: unattended %v", a.Name, argv)
		}
	}
	before := Chain(Claude)[2].Name
	Claude.Version += ".1"
	after := Chain(Claude)[2].Name
	Claude.Version = strings.TrimSuffix(Claude.Version, ".1")
	if before == after {
		t.Error("the image name does not follow the version")
	}
	if _, err := Get("nope"); err == nil || !strings.Contains(err.Error(), "claude") {
		t.Errorf("unknown agent: %v", err)
	}
}
