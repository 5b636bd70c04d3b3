package sandbox

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "dev", "My-Box_1.2", strings.Repeat("a", 63)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", ".a", "a/b", "a b", "..", strings.Repeat("a", 64), "a\x00", "é"} {
		if err := ValidateName(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v, want invalid argument", bad, err)
		}
	}
}

func TestResolveResources(t *testing.T) {
	r, err := ResolveResources(0, 0, 0)
	if err != nil || r.MemoryMB != DefaultMemoryMB || r.VCPUs != DefaultVCPUs || r.PidsLimit != DefaultPidsLimit || r.DiskMB != DefaultDiskMB {
		t.Fatalf("defaults: %+v %v", r, err)
	}
	if r, err := ResolveResources(0, 0, MinDiskMB); err != nil || r.DiskMB != MinDiskMB {
		t.Errorf("the smallest disk: %+v %v", r, err)
	}
	for _, c := range []struct{ mem, cpu, disk int }{{8, 1, 0}, {1 << 30, 1, 0}, {64, 1 << 12, 0}, {64, -1, 0},
		{64, 1, MinDiskMB - 1}, {64, 1, -1}, {64, 1, 1 << 30}} {
		if _, err := ResolveResources(c.mem, c.cpu, c.disk); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("mem %d cpu %d disk %d: %v", c.mem, c.cpu, c.disk, err)
		}
	}
}

func TestResolveProfile(t *testing.T) {
	def, err := ResolveProfile("")
	if err != nil || def.Profile != "moderate" || def.Seccomp != "default" || def.ReadOnlyRoot || def.Network != "gateway" {
		t.Errorf("default: %+v %v", def, err)
	}
	r, err := ResolveProfile("restrictive")
	if err != nil || !r.ReadOnlyRoot || r.Seccomp != "strict" || r.Network != "none" || len(r.Capabilities) == 0 {
		t.Errorf("restrictive: %+v %v", r, err)
	}
	if _, err := ResolveProfile("lax"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("unknown profile: %v", err)
	}
}

func TestParseDirMount(t *testing.T) {
	dir := t.TempDir()
	m, err := ParseDirMount(dir)
	if err != nil || m.HostPath != dir || m.Path != "/workspace" || m.ReadOnly {
		t.Errorf("plain: %+v %v", m, err)
	}
	m, err = ParseDirMount(dir + ":/src:ro")
	if err != nil || m.Path != "/src" || !m.ReadOnly {
		t.Errorf("ro: %+v %v", m, err)
	}
	f := dir + "/file"
	os.WriteFile(f, nil, 0o600)
	for _, bad := range []string{"", "rel/dir", dir + ":/", dir + ":rel", dir + ":/a/../b", dir + ":/x:rx", dir + ":/x:ro:extra", f, dir + "/missing"} {
		if _, err := ParseDirMount(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v, want invalid argument", bad, err)
		}
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "30s": 30 * time.Second, "2h": 2 * time.Hour, "1d": 24 * time.Hour} {
		if got, err := ParseTTL(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"0s", "-1m", "soon", "400d", "1dd"} {
		if _, err := ParseTTL(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestNewUUID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		u := newUUID()
		if len(u) != 36 || u[14] != '4' || seen[u] {
			t.Fatalf("bad or repeated uuid %q", u)
		}
		seen[u] = true
	}
}

func TestAddedEnv(t *testing.T) {
	got := addedEnv([]string{"PATH=/bin", "A=1"}, []string{"PATH=/bin", "A=2", "B=3"})
	if strings.Join(got, " ") != "A=2 B=3" {
		t.Errorf("addedEnv = %q", got)
	}
	if got := addedEnv([]string{"A=1"}, []string{"A=1"}); got != nil {
		t.Errorf("nothing added, got %q", got)
	}
}
