package sandbox

import (
	"errors"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TestVolumeConflict walks the rules of who may mount a volume beside
// whom (see volumes.go).
func TestVolumeConflict(t *testing.T) {
	rw := func(b string) volumeUse { return volumeUse{sandbox: "a", backend: b} }
	ro := func(b string) volumeUse { return volumeUse{sandbox: "a", backend: b, ro: true} }
	sh := func(b string) volumeUse { return volumeUse{sandbox: "a", backend: b, shared: true} }
	for _, c := range []struct {
		what   string
		want   volumeUse
		others []volumeUse
		ok     bool
	}{
		{"rw alone", rw("container"), nil, true},
		{"rw beside rw", rw("container"), []volumeUse{rw("container")}, false},
		{"rw beside ro", rw("microvm"), []volumeUse{ro("container")}, false},
		{"rw beside shared", rw("container"), []volumeUse{sh("container")}, false},
		{"ro beside rw", ro("container"), []volumeUse{rw("gvisor")}, false},
		{"shared beside rw", sh("container"), []volumeUse{rw("container")}, false},
		{"ro beside ro", ro("microvm"), []volumeUse{ro("container"), ro("microvm")}, true},
		{"shared beside shared", sh("gvisor"), []volumeUse{sh("container")}, true},
		{"ro container beside shared", ro("container"), []volumeUse{sh("container")}, true},
		{"ro microvm beside shared", ro("microvm"), []volumeUse{sh("container")}, false},
		{"shared beside ro", sh("container"), []volumeUse{ro("container")}, false},
		{"shared beside a microvm", sh("container"), []volumeUse{ro("microvm")}, false},
	} {
		err := volumeConflict("v", c.want, c.others)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok=%v", c.what, err, c.ok)
		}
		if err != nil && !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("%s: %v is not a failed precondition", c.what, err)
		}
	}
}
