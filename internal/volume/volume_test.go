package volume

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/loopfs"
	"github.com/agentkernel/agentkernel/internal/testutil"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"data", "my-data", "a_1", "A9"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "/abs", "-x", "_x", ".hidden", "a b", "a:b", "a\x00b", strings.Repeat("a", 64)} {
		if err := ValidateName(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ValidateName(%q) = %v, want invalid argument", bad, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"8MB": 8 << 20, "512m": 512 << 20, "2GB": 2 << 30, "1.5G": 3 << 29, "1T": 1 << 40, "16777216": 16 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "-1G", "1KB", "2TB", "lots", "1e400"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestParseMount(t *testing.T) {
	m, err := ParseMount("data:/data:ro")
	if err != nil || m != (Mount{Name: "data", Path: "/data", ReadOnly: true}) {
		t.Errorf("ParseMount ro = %+v, %v", m, err)
	}
	m, err = ParseMount("data:/srv/x:shared")
	if err != nil || m != (Mount{Name: "data", Path: "/srv/x", Shared: true}) {
		t.Errorf("ParseMount shared = %+v, %v", m, err)
	}
	for _, bad := range []string{"data", "data:", "data:rel", "data:/", "data:/a/../b", "../x:/data", "/etc:/data", "data:/d:rx", "a:/b:ro:x",
		"data:/proc", "data:/proc/x", "data:/sys/fs", "data:/dev", "data:/dev/shm", "data:/.agentkernel/run", "data://x", "data:/x/",
		"data:/x/.", "data:/..", "data:/a\x00b", "DATA:/d:RO", ":/d", "data:/d:"} {
		if _, err := ParseMount(bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseMount(%q) = %v, want invalid argument", bad, err)
		}
	}
}

// TestStore creates, lists, mounts (through loopfs, as the daemon will),
// fills past its size, and deletes a volume.
func TestStore(t *testing.T) {
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 is not installed (e2fsprogs; scripts/setup.sh installs it)")
	}
	ctx := context.Background()
	s := &Store{Dir: filepath.Join(t.TempDir(), "volumes")}
	if _, err := s.Create(ctx, "../evil", 0); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("Create(../evil) = %v", err)
	}
	info, err := s.Create(ctx, "data", 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	if info.SizeBytes != 16<<20 || info.Disk != filepath.Join(s.Dir, "data", DiskFile) {
		t.Errorf("Create = %+v", info)
	}
	if _, err := s.Create(ctx, "data", 16<<20); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second Create = %v, want already exists", err)
	}
	if _, err := s.Get("nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get(nope) = %v, want not found", err)
	}
	l, err := s.List()
	if err != nil || len(l) != 1 || l[0].Name != "data" {
		t.Errorf("List = %+v, %v", l, err)
	}
	if os.Geteuid() == 0 {
		mnt := filepath.Join(t.TempDir(), "mnt")
		os.Mkdir(mnt, 0o700)
		if err := loopfs.Mount(info.Disk, mnt, "ext4", false, unix.MS_NODEV, ""); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Stat(mnt, &st)
		if st.Uid != 0 || st.Mode&0o777 != 0o755 {
			t.Errorf("volume root: uid %d mode %o, want 0 and 755", st.Uid, st.Mode&0o777)
		}
		werr := os.WriteFile(filepath.Join(mnt, "big"), make([]byte, 32<<20), 0o600)
		loopfs.Unmount(mnt)
		if !errors.Is(werr, unix.ENOSPC) {
			t.Errorf("writing 32 MB into a 16 MB volume: %v, want ENOSPC", werr)
		}
		if ds := testutil.LoopDevicesLeft(s.Dir); len(ds) > 0 {
			t.Errorf("loop devices left: %v", ds)
		}
	}
	if err := s.SetGuestWritten("data"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get("data"); err != nil || !got.GuestWritten || got.Disk != info.Disk || got.SizeBytes != info.SizeBytes {
		t.Errorf("Get after SetGuestWritten = %+v, %v", got, err)
	}
	if err := s.Delete("data"); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(s.Dir); len(ents) != 0 {
		t.Errorf("left in %s after Delete: %v", s.Dir, ents)
	}
	if err := s.Delete("data"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Delete = %v, want not found", err)
	}
}
