package mountinfo

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/a/b`:           "/a/b",
		`/a\040b`:        "/a b",
		`/tab\011x\134y`: "/tab\tx\\y",
		`/odd\04`:        `/odd\04`,
		`/not\999`:       `/not\999`,
		`/big\777`:       `/big\777`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	text := `22 1 0:21 / /proc rw,nosuid - proc proc rw
36 22 0:32 / /run/a\040b rw,relatime shared:9 - tmpfs tmp\040fs rw,size=10k
40 36 0:33 /sub /run/a\040b/c rw - overlay overlay rw,lowerdir=/l1:/l\0402,upperdir=/u
`
	ms, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 3 || ms[1].Target != "/run/a b" || ms[1].Source != "tmp fs" || ms[1].FSType != "tmpfs" ||
		ms[2].Root != "/sub" || ms[2].Parent != 36 || ms[2].SuperOptions != "rw,lowerdir=/l1:/l 2,upperdir=/u" {
		t.Fatalf("%+v", ms)
	}
	if got := Under(ms, "/run/a b"); !slices.Equal(got, []string{"/run/a b", "/run/a b/c"}) {
		t.Errorf("Under: %q", got)
	}
	if got := DeepestFirst(Under(ms, "/run")); !slices.Equal(got, []string{"/run/a b/c", "/run/a b"}) {
		t.Errorf("DeepestFirst: %q", got)
	}
	if _, err := Parse("garbage line\n"); err == nil {
		t.Error("a malformed line was accepted")
	}
}

// TestMountWithSpace is the regression of the layers issue: two of the
// five parsers skipped the unescaping, so a mount whose path has a space
// went unseen. A real tmpfs mounted at such a path must be found.
func TestMountWithSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := filepath.Join(t.TempDir(), "with space", "and\ttab")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount here: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	ms, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if got := Under(ms, filepath.Dir(dir)); !slices.Equal(got, []string{dir}) {
		t.Fatalf("Under(%q) = %q", filepath.Dir(dir), got)
	}
}
