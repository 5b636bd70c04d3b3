package sandbox

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/backend"
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

// TestVolumeClaimsWaitForRemoval: a read-write claim refuses a second
// writer, but one of a sandbox being removed is waited for until its
// teardown releases it.
func TestVolumeClaimsWaitForRemoval(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(disk, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := func(id string) *backend.Spec {
		return &backend.Spec{ID: id, Name: id, Backend: "container", Volumes: []backend.VolumeMount{{Name: "v", Disk: disk, Path: "/v"}}}
	}
	var c volumeClaims
	ctx := context.Background()
	if err := c.acquire(ctx, "a", spec("a"), false); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := c.acquire(short, "b", spec("b"), false); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("second writer: %v", err)
	}
	c.releasing("a")
	if err := c.check(spec("b")); err != nil {
		t.Errorf("check beside a sandbox being removed: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.acquire(ctx, "b", spec("b"), false) }()
	select {
	case err := <-done:
		t.Fatalf("acquired before the release: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	c.release("a")
	if err := <-done; err != nil {
		t.Fatalf("after the release: %v", err)
	}
	if got := c.mounted("v", statIno(t, disk)); len(got) != 1 || got["b"].sandbox != "b" {
		t.Errorf("mounted: %+v", got)
	}
}

func statIno(t *testing.T, p string) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
