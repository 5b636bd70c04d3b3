package sandbox

import (
	"errors"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestValidateSource(t *testing.T) {
	for _, c := range []struct {
		url, ref string
		start    bool
		want     string // "" means accepted
	}{
		{"", "", true, ""},
		{"https://git.example/r.git", "", true, ""},
		{"http://git.example/r.git", "v1.2.3", true, ""},
		{"https://git.example/r.git", "feature/x-y_z+1", true, ""},
		{"https://git.example/r.git", "3f37288f970948ed239e6eac7c5053edc06f28bd", true, ""},
		{"", "main", true, "source_ref without source_url"},
		{"https://git.example/r.git", "", false, "start=false"},
		{"file:///etc", "", true, "only https:// and http://"},
		{"ssh://git@git.example/r.git", "", true, "only https:// and http://"},
		{"git.example/r.git", "", true, "only https:// and http://"},
		{"https:///r.git", "", true, "no host"},
		{"https://u:p@git.example/r.git", "", true, "credentials in the URL"},
		{"https://git.example/r.git\n", "", true, "control characters"},
		{"https://git.example/" + strings.Repeat("a", maxSourceURL), "", true, "longer than"},
		{"https://git.example/r.git", "--upload-pack=x", true, "not a branch"},
		{"https://git.example/r.git", "-b", true, "not a branch"},
		{"https://git.example/r.git", "main..dev", true, "not a branch"},
		{"https://git.example/r.git", "HEAD@{1}", true, "not a branch"},
		{"https://git.example/r.git", "a//b", true, "not a branch"},
		{"https://git.example/r.git", "a/", true, "not a branch"},
		{"https://git.example/r.git", "x.lock", true, "not a branch"},
		{"https://git.example/r.git", "a b", true, "not a branch"},
		{"https://git.example/r.git", strings.Repeat("a", maxSourceRef+1), true, "not a branch"},
	} {
		err := validateSource(c.url, c.ref, c.start)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("validateSource(%q, %q): %v, want accepted", c.url, c.ref, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, errdefs.ErrInvalidArgument)):
			t.Errorf("validateSource(%q, %q): %v, want an invalid argument saying %q", c.url, c.ref, err, c.want)
		}
	}
}
