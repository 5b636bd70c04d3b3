package image

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestScrubCopy(t *testing.T) {
	src := filepath.Join(t.TempDir(), "etc")
	elsewhere := t.TempDir()
	files := map[string]os.FileMode{
		"passwd": 0o644, "group": 0o644, "hosts": 0o644, "nsswitch.conf": 0o644, "ld.so.conf": 0o644,
		"ssl/certs/ca.pem": 0o644, "ssh/ssh_config": 0o644, "ssh/ssh_host_ed25519_key.pub": 0o644,
		// Everything below must stay out, even where world-readable.
		"shadow": 0o644, "gshadow": 0o644, "passwd-": 0o644, "sudoers": 0o644, "sudoers.d/admin": 0o644,
		"ssh/ssh_host_ed25519_key": 0o644, "ssh/ssh_host_rsa_key": 0o600, "security/opasswd": 0o644,
		"machine-id": 0o644, "ssl/private/snakeoil.key": 0o644, "app/private.conf": 0o640,
		"wireguard/wg0.conf": 0o644, "app/api.key": 0o644, "NetworkManager/system-connections/wifi": 0o644,
	}
	for name, mode := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(name), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(src, "closed/inner"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "closed/inner/x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(src, "localtime")); err != nil {
		t.Fatal(err)
	}
	stub := filepath.Join(elsewhere, "stub-resolv.conf")
	if err := os.WriteFile(stub, []byte("nameserver 127.0.0.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(stub, filepath.Join(src, "resolv.conf")); err != nil {
		t.Fatal(err)
	}

	dst := filepath.Join(t.TempDir(), "copy")
	if err := scrubCopy(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dst, p)
			got = append(got, rel)
		}
		return nil
	})
	want := map[string]bool{"passwd": true, "group": true, "hosts": true, "nsswitch.conf": true, "ld.so.conf": true,
		"ssl/certs/ca.pem": true, "ssh/ssh_config": true, "ssh/ssh_host_ed25519_key.pub": true,
		"localtime": true, "resolv.conf": true}
	for _, g := range got {
		if !want[g] {
			t.Errorf("%s was copied", g)
		}
		delete(want, g)
	}
	for w := range want {
		t.Errorf("%s missing from the copy", w)
	}
	if tgt, _ := os.Readlink(filepath.Join(dst, "localtime")); tgt != "/usr/share/zoneinfo/UTC" {
		t.Errorf("localtime -> %q", tgt)
	}
	if fi, err := os.Lstat(filepath.Join(dst, "resolv.conf")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("resolv.conf not copied by content: %v %v", fi, err)
	}
}

func TestHostView(t *testing.T) {
	requireRoot(t)
	s := openStore(t)
	hv, err := s.HostView(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hv.Etc, s.dir("host", "etc-")) {
		t.Errorf("etc copy at %s", hv.Etc)
	}
	for _, secret := range []string{"shadow", "gshadow", "shadow-", "ssl/private"} {
		if _, err := os.Lstat(filepath.Join(hv.Etc, secret)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s in the /etc copy: %v", secret, err)
		}
	}
	for _, keep := range []string{"passwd", "group"} {
		if _, err := os.Stat(filepath.Join(hv.Etc, keep)); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
	}
	filepath.WalkDir(hv.Etc, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, _ := d.Info()
		if fi.Mode().Perm()&0o004 == 0 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: mode %v uid %d", p, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid)
		}
		return nil
	})
	// /usr is a bind; on merged-/usr hosts /bin is a symlink.
	found := false
	for _, b := range hv.Binds {
		found = found || b == "/usr"
	}
	if !found {
		t.Errorf("binds %v lack /usr", hv.Binds)
	}
	if fi, err := os.Lstat("/bin"); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if tgt, _ := os.Readlink("/bin"); hv.Symlinks["bin"] != tgt {
			t.Errorf("bin -> %q, host has %q", hv.Symlinks["bin"], tgt)
		}
	}
	// Cached: a second call returns the same copy; a rebuild a new one.
	again, err := s.HostView(context.Background())
	if err != nil || again.Etc != hv.Etc {
		t.Errorf("second HostView built a new copy: %s vs %s (%v)", again.Etc, hv.Etc, err)
	}
	if err := s.RebuildHostEtc(context.Background()); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.HostView(context.Background())
	if err != nil || fresh.Etc == hv.Etc {
		t.Errorf("rebuild kept %s (%v)", fresh.Etc, err)
	}
	if _, err := os.Stat(filepath.Join(hv.Etc, "passwd")); err != nil {
		t.Errorf("the old copy was removed under running sandboxes: %v", err)
	}
}

// TestRemoveInUse mounts an overlay over an imported layer, as the container
// backend does, and checks that Remove refuses until it is unmounted.
func TestRemoveInUse(t *testing.T) {
	requireRoot(t)
	s := openStore(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := s.Import(context.Background(), "busy", src)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + img.Layers[0] + ",upperdir=" + filepath.Join(work, "upper") + ",workdir=" + filepath.Join(work, "work")
	merged := filepath.Join(work, "merged")
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("overlayfs unavailable: %v", err)
	}
	defer unix.Unmount(merged, unix.MNT_DETACH)
	if err := s.Remove("busy"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Remove of a mounted image: %v", err)
	}
	// A removed sandbox's overlay goes away in the background: Remove
	// waits for it.
	go func() {
		time.Sleep(300 * time.Millisecond)
		unix.Unmount(merged, 0)
	}()
	if err := s.Remove("busy"); err != nil {
		t.Fatal(err)
	}
}
