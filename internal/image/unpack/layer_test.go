package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	. "github.com/agentkernel/agentkernel/internal/image/imagetest"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

var testShift = IDShift{UID: 100000, GID: 100000, Size: 65536}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (owners in the mapped range, whiteout devices, trusted xattrs)")
	}
}

// capV2 is a VFS_CAP_REVISION_2 security.capability with cap_net_raw
// permitted and effective; capV3 the same with a root id.
func capV2() []byte {
	b := make([]byte, 20)
	binary.LittleEndian.PutUint32(b[0:], 0x02000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<13)
	return b
}

func capV3(rootID uint32) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b[0:], 0x03000001)
	binary.LittleEndian.PutUint32(b[4:], 1<<13)
	binary.LittleEndian.PutUint32(b[20:], rootID)
	return b
}

func withXattrs(e Entry, kv ...string) Entry {
	e.Hdr.PAXRecords = map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		e.Hdr.PAXRecords["SCHILY.xattr."+kv[i]] = kv[i+1]
	}
	e.Hdr.Format = tar.FormatPAX
	return e
}

func unpackBytes(t *testing.T, b []byte) (string, Stats, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layer")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := Layer(context.Background(), bytes.NewReader(b), dir, Options{Shift: testShift})
	return dir, st, err
}

func TestLayerExact(t *testing.T) {
	requireRoot(t)
	mt := time.Unix(1700000000, 0)
	dirAt := func(name string, mode int64) Entry {
		e := Dir(name)
		e.Hdr.Mode, e.Hdr.ModTime = mode, mt
		return e
	}
	ping := File("bin/ping", "ELF")
	ping.Hdr.Mode = 0o4755
	ping = withXattrs(ping, "security.capability", string(capV2()), "user.test", "hi")
	v3 := withXattrs(File("bin/v3", "x"), "security.capability", string(capV3(0)))
	passwd := withXattrs(File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), "trusted.overlay.redirect", "/x", "security.selinux", "l")
	owned := File("usr/lib/implicit/file", "o")
	owned.Hdr.Uid, owned.Hdr.Gid = 7, 8
	home := File("home/u/f", "u")
	home.Hdr.Uid, home.Hdr.Gid = 1000, 1000
	devNull := Entry{Hdr: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}
	devSda := Entry{Hdr: tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8}}
	oldWhiteout := Entry{Hdr: tar.Header{Name: "oldstyle", Typeflag: tar.TypeChar}}
	fifo := Entry{Hdr: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o600}}
	root := dirAt("./", 0o755)
	b := Tar(t,
		root,
		dirAt("etc/", 0o755), passwd, Hard("etc/hard", "etc/passwd"), Whiteout("etc", "shadow"), File("etc/.wh..wh.plnk", ""),
		dirAt("bin/", 0o755), ping, v3, Link("bin/sh", "/bin/busybox"),
		owned, home, devNull, devSda, oldWhiteout, fifo,
		Whiteout(".", "gone"),
		dirAt("var/", 0o755), dirAt("var/cache/", 0o700), Opaque("var/cache"), File("var/cache/new", "n"),
		Opaque("opq-implicit"),
		Whiteout("wh-parent/missing", "x"),
		File("both", "kept"), Whiteout(".", "both"),
		dirAt("tmp/", 0o1777),
	)
	dir, st, err := unpackBytes(t, b)
	if err != nil {
		t.Fatal(err)
	}
	opq := " trusted.overlay.opaque=79"
	want := []string{
		". d 0755 +0:+0",
		"bin d 0755 +0:+0",
		`bin/ping f 4755 +0:+0 "ELF" security.capability=0100000200200000000000000000000000000000 user.test=6869`,
		"bin/sh l 0777 +0:+0 -> /bin/busybox",
		`bin/v3 f 0644 +0:+0 "x" security.capability=0100000300200000000000000000000000000000a0860100`,
		`both f 0644 +0:+0 "kept"`,
		"etc d 0755 +0:+0",
		`etc/hard f 0644 +0:+0 "root:x:0:0::/root:/bin/sh\n" links=2`,
		`etc/passwd f 0644 +0:+0 "root:x:0:0::/root:/bin/sh\n" links=2`,
		"etc/shadow c 0600 +0:+0 0:0",
		"fifo p 0600 +0:+0",
		"gone c 0600 +0:+0 0:0",
		"home d 0755 +0:+0",
		"home/u d 0755 +0:+0",
		`home/u/f f 0644 +1000:+1000 "u"`,
		"oldstyle c 0600 +0:+0 0:0",
		"opq-implicit d 0755 +0:+0" + opq,
		"tmp d 1777 +0:+0",
		"usr d 0755 +0:+0",
		"usr/lib d 0755 +0:+0",
		"usr/lib/implicit d 0755 +0:+0",
		`usr/lib/implicit/file f 0644 +7:+8 "o"`,
		"var d 0755 +0:+0",
		"var/cache d 0700 +0:+0" + opq,
		`var/cache/new f 0644 +0:+0 "n"`,
		"wh-parent d 0755 +0:+0",
		"wh-parent/missing d 0755 +0:+0",
		"wh-parent/missing/x c 0600 +0:+0 0:0",
	}
	got := Describe(t, dir, testShift.UID, testShift.GID)
	if d := Diff(got, want); d != "" {
		t.Errorf("unpacked layer differs:\n%s\ngot:\n%s", d, strings.Join(got, "\n"))
	}
	wantStats := Stats{Bytes: st.Bytes, Entries: 26, Whiteouts: 4, OpaqueDirs: 2, SkippedDevices: 2, DroppedXattrs: 2}
	if !reflect.DeepEqual(st, wantStats) {
		t.Errorf("stats %+v, want %+v", st, wantStats)
	}
	// Times of listed directories survive the whiteouts made in them.
	for _, d := range []string{"etc", "var/cache"} {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil || !fi.ModTime().Equal(mt) {
			t.Errorf("%s: mtime %v, want %v (%v)", d, fi.ModTime(), mt, err)
		}
	}
}

// TestLayerHostile feeds layers that try to write outside the directory;
// each must fail with ErrInvalidArgument and leave the outside untouched.
func TestLayerHostile(t *testing.T) {
	requireRoot(t)
	outside := t.TempDir()
	if err := os.Chmod(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("safe"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]Entry{
		"dotdot":                 {File("../escape", "x")},
		"nested dotdot":          {File("a/../../escape", "x")},
		"absolute":               {File(outside+"/abs", "x")},
		"absolute symlink write": {Link("a", outside), File("a/evil", "x")},
		"relative symlink write": {Link("a", "../../../../../../"+outside), File("a/evil", "x")},
		"symlink dir then mkdir": {Link("a", outside), Dir("a/sub/")},
		"hardlink out":           {Hard("h", "../../../../etc/passwd")},
		"hardlink abs":           {Hard("h", "/etc/passwd")},
		"hardlink via symlink":   {Link("a", outside), Hard("h", "a/victim")},
		"whiteout via symlink":   {Link("a", outside), Whiteout("a", "victim")},
		"opaque via symlink":     {Link("a", outside), Opaque("a")},
		"whiteout dotdot":        {File("../.wh.victim", "")},
		"whiteout of dotdot":     {File(".wh...", "")},
		"absolute whiteout":      {File(outside+"/.wh.victim", "")},
		"owner out of range":     {{Hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg, Uid: 65536}}},
		"negative gid":           {{Hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg, Gid: -1}}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := unpackBytes(t, Tar(t, entries...))
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("err = %v, want invalid argument", err)
			}
			got := Describe(t, outside, 0, 0)
			want := []string{". d 0755 0:0", `victim f 0644 0:0 "safe"`}
			if d := Diff(got, want); d != "" {
				t.Errorf("outside changed:\n%s", d)
			}
			var buf [64]byte
			if n, err := unix.Lgetxattr(outside, opaqueXattr, buf[:]); err == nil {
				t.Errorf("outside got %s=%q", opaqueXattr, buf[:n])
			}
		})
	}
}

// TestLayerXattrOnSymlink: an xattr on a symlink entry is never set on
// the symlink's target.
func TestLayerXattrOnSymlink(t *testing.T) {
	requireRoot(t)
	outside := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(outside, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := withXattrs(Link("s", outside), "user.test", "x", "security.capability", string(capV2()))
	dir, st, err := unpackBytes(t, Tar(t, l))
	if err != nil {
		t.Fatal(err)
	}
	var buf [64]byte
	for _, name := range []string{"user.test", "security.capability"} {
		if _, err := unix.Lgetxattr(outside, name, buf[:]); err == nil {
			t.Errorf("the symlink's target got %s", name)
		}
	}
	if st.DroppedXattrs == 0 {
		if _, err := unix.Lgetxattr(filepath.Join(dir, "s"), "user.test", buf[:]); err != nil {
			t.Errorf("user.test neither set on the symlink nor counted as dropped")
		}
	}
}

func TestLayerLimits(t *testing.T) {
	requireRoot(t)
	b := Tar(t, File("a", "0123456789"), File("b", "0123456789"))
	dir := t.TempDir()
	_, err := Layer(context.Background(), bytes.NewReader(b), dir, Options{Shift: testShift, MaxBytes: 15})
	if !errors.Is(err, errdefs.ErrTooLarge) {
		t.Errorf("bytes: err = %v, want too large", err)
	}
	_, err = Layer(context.Background(), bytes.NewReader(b), t.TempDir(), Options{Shift: testShift, MaxEntries: 1})
	if !errors.Is(err, errdefs.ErrTooLarge) {
		t.Errorf("entries: err = %v, want too large", err)
	}
	// A truncated archive and a huge trailer are refused.
	_, err = Layer(context.Background(), bytes.NewReader(b[:515]), t.TempDir(), Options{Shift: testShift})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("truncated: err = %v, want invalid argument", err)
	}
	long := append(append([]byte(nil), b...), make([]byte, maxTrailer+10)...)
	_, err = Layer(context.Background(), bytes.NewReader(long), t.TempDir(), Options{Shift: testShift})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("trailer: err = %v, want invalid argument", err)
	}
	// Cancellation stops it.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Layer(ctx, bytes.NewReader(b), t.TempDir(), Options{Shift: testShift}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

// FuzzLayer: whatever the archive, Layer does not panic and writes
// nothing outside its directory.
func FuzzLayer(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root")
	}
	seed := func(entries ...Entry) []byte { return Tar(f, entries...) }
	f.Add(seed(Dir("a/"), File("a/b", "x"), Whiteout("a", "c"), Opaque("a")))
	f.Add(seed(Link("l", "/"), File("l/x", "y")))
	f.Add(seed(Hard("h", "../x"), withXattrs(File("f", "z"), "user.test", "v")))
	f.Fuzz(func(t *testing.T, b []byte) {
		top := t.TempDir()
		dir := filepath.Join(top, "layer")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		Layer(context.Background(), bytes.NewReader(b), dir, Options{Shift: testShift, MaxBytes: 1 << 20, MaxEntries: 1000})
		entries, err := os.ReadDir(top)
		if err != nil || len(entries) != 1 {
			t.Fatalf("something was written beside the layer: %v %v", entries, err)
		}
	})
}
