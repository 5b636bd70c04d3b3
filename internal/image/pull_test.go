package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	. "github.com/agentkernel/agentkernel/internal/image/imagetest"
)

// mountLayers mounts img's layers read-only as one overlay and returns the
// mount point, unmounted when t ends.
func mountLayers(t *testing.T, img *Image) string {
	t.Helper()
	if len(img.Layers) < 2 {
		t.Fatal("an overlay without an upper layer needs two layers")
	}
	lower := slices.Clone(img.Layers)
	slices.Reverse(lower)
	mnt := t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lower, ":")); err != nil {
		t.Fatalf("mounting the layers: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	return mnt
}

// events collects pull progress.
type events struct {
	mu  sync.Mutex
	all []PullEvent
}

func (e *events) add(ev PullEvent) { e.mu.Lock(); e.all = append(e.all, ev); e.mu.Unlock() }

func (e *events) statuses(layer string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.all {
		if ev.Layer == layer && (len(out) == 0 || out[len(out)-1] != ev.Status) {
			out = append(out, ev.Status)
		}
	}
	return out
}

// baseLayers are three layers exercising whiteouts, opaque directories,
// hard links, symlinks, owners, modes and xattrs.
func baseLayers(t *testing.T) []v1.Layer {
	suid := File("bin/su", "su")
	suid.Hdr.Mode = 0o4755
	owned := File("home/u/notes", "mine")
	owned.Hdr.Uid, owned.Hdr.Gid = 1000, 1000
	capped := File("bin/ping", "ping")
	capped.Hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.test": "v"}
	capped.Hdr.Format = tar.FormatPAX
	l1 := layer(t, false,
		Dir("bin/"), Dir("etc/"), File("etc/conf", "v1"), File("old", "old"),
		Dir("usr/"), Dir("usr/share/"), Dir("usr/share/doc/"), File("usr/share/doc/a", "a"), File("usr/share/doc/b", "b"),
		Dir("var/"), Dir("var/lib/"), Dir("var/lib/x/"), File("var/lib/x/file", "x"),
		File("bin/busybox", "bb"), Hard("bin/sh", "bin/busybox"), Link("bin/ls", "busybox"),
		Dir("home/"), Dir("home/u/"), owned,
	)
	l2 := layer(t, false,
		Whiteout(".", "old"),
		Dir("usr/share/doc/"), Opaque("usr/share/doc"), File("usr/share/doc/c", "c"),
		Dir("etc/"), File("etc/conf", "v2"),
		Link("lib", "/usr/lib"), suid,
	)
	l3 := layer(t, true, // zstd
		Dir("var/lib/"), Whiteout("var/lib", "x"),
		Dir("bin/"), capped,
	)
	return []v1.Layer{l1, l2, l3}
}

// wantRoot is the merged root filesystem of baseLayers.
var wantRoot = []string{
	". d 0755 +0:+0",
	"bin d 0755 +0:+0",
	`bin/busybox f 0644 +0:+0 "bb" links=2`,
	"bin/ls l 0777 +0:+0 -> busybox",
	`bin/ping f 0644 +0:+0 "ping" user.test=76`,
	`bin/sh f 0644 +0:+0 "bb" links=2`,
	`bin/su f 4755 +0:+0 "su"`,
	"etc d 0755 +0:+0",
	`etc/conf f 0644 +0:+0 "v2"`,
	"home d 0755 +0:+0",
	"home/u d 0755 +0:+0",
	`home/u/notes f 0644 +1000:+1000 "mine"`,
	"lib l 0777 +0:+0 -> /usr/lib",
	"usr d 0755 +0:+0",
	"usr/share d 0755 +0:+0",
	"usr/share/doc d 0755 +0:+0", // opaque in its layer; overlayfs hides the xattr
	`usr/share/doc/c f 0644 +0:+0 "c"`,
	"var d 0755 +0:+0",
	"var/lib d 0755 +0:+0",
}

func TestPullExact(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	layers := baseLayers(t)
	cfg := v1.Config{Env: []string{"PATH=/bin", "A=1"}, Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "echo hi"},
		WorkingDir: "work", User: "1000:1000", ExposedPorts: map[string]struct{}{"8080/tcp": {}}}
	img := buildImage(t, "amd64", cfg, layers...)
	reg.push(t, "base:1", img)

	s := openStore(t)
	var ev events
	got, err := s.Pull(context.Background(), reg.ref("base:1"), PullOptions{Progress: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	if want := reg.host + "/base:1"; got.Name != want {
		t.Errorf("name %q, want %q", got.Name, want)
	}
	if got.ID != digestOf(t, img).String() || len(got.Layers) != 3 {
		t.Errorf("id %s (want %s), %d layers", got.ID, digestOf(t, img), len(got.Layers))
	}
	c := got.Config
	if c == nil || !slices.Equal(c.Env, cfg.Env) || !slices.Equal(c.Entrypoint, cfg.Entrypoint) || !slices.Equal(c.Cmd, cfg.Cmd) ||
		c.WorkingDir != "/work" || c.User != "1000:1000" || !slices.Equal(c.ExposedPorts, []string{"8080/tcp"}) {
		t.Errorf("config %+v", c)
	}
	mnt := mountLayers(t, got)
	if d := Diff(Describe(t, mnt, s.shift.UID, s.shift.GID), wantRoot); d != "" {
		t.Errorf("root filesystem differs:\n%s", d)
	}
	for i, l := range layers {
		if st := ev.statuses(digestOf(t, l).String()); !slices.Equal(st, []string{StatusWaiting, StatusDownloading, StatusDone}) {
			t.Errorf("layer %d went through %v", i, st)
		}
		if got.LayerIDs[i] != diffIDOf(t, l).Hex {
			t.Errorf("layer %d: id %s, want its diff-id", i, got.LayerIDs[i])
		}
	}
	// Get finds it by its full and familiar names; the store is an OCI layout.
	for _, n := range []string{reg.host + "/base:1", "http://" + reg.host + "/base:1"} {
		if _, err := s.Get(n); (err == nil) != !strings.HasPrefix(n, "http") {
			t.Errorf("Get(%q): %v", n, err)
		}
	}
	var idx ociIndex
	b, err := os.ReadFile(filepath.Join(s.Root(), "index.json"))
	if err == nil {
		err = json.Unmarshal(b, &idx)
	}
	if err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != got.ID ||
		idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != got.Name {
		t.Errorf("index.json: %s %v", b, err)
	}

	// Pulling again fetches nothing.
	var again events
	if _, err := s.Pull(context.Background(), reg.ref("base:1"), PullOptions{Progress: again.add}); err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if n := reg.gets(digestOf(t, l)); n != 1 {
			t.Errorf("layer %s downloaded %d times", digestOf(t, l), n)
		}
		if st := again.statuses(digestOf(t, l).String()); !slices.Equal(st, []string{StatusWaiting, StatusExists}) {
			t.Errorf("second pull: %v", st)
		}
	}
}

func TestPullSharesAndCollects(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	layers := baseLayers(t)
	extra := layer(t, false, File("extra", "e"))
	reg.push(t, "a:1", buildImage(t, "amd64", v1.Config{}, layers...))
	reg.push(t, "b:1", buildImage(t, "amd64", v1.Config{}, append(slices.Clone(layers[:2]), extra)...))
	s := openStore(t)
	ctx := context.Background()
	a, err := s.Pull(ctx, reg.ref("a:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Pull(ctx, reg.ref("b:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers[:2] {
		if n := reg.gets(digestOf(t, l)); n != 1 {
			t.Errorf("shared layer %d downloaded %d times", i, n)
		}
		if a.Layers[i] != b.Layers[i] {
			t.Errorf("shared layer %d unpacked twice: %s, %s", i, a.Layers[i], b.Layers[i])
		}
	}
	// A second name for a; removing a keeps everything b and the tag use.
	if _, err := s.Tag(a.Name, "mine:v1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(a.Name); err != nil {
		t.Fatal(err)
	}
	tagged, err := s.Get("mine:v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range tagged.Layers {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("layer of the tag gone: %v", err)
		}
	}
	// Removing the tag deletes a's own layer and blobs, not b's.
	if err := s.Remove("mine:v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Layers[2]); !os.IsNotExist(err) {
		t.Errorf("a's own layer survived: %v", err)
	}
	if _, ok := s.blobs.Has(digestOf(t, layers[2])); ok {
		t.Error("a's own layer blob survived")
	}
	for _, d := range b.Layers {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("b lost a layer: %v", err)
		}
	}
	if rep, err := s.Prune(); err != nil || rep != (PruneReport{}) {
		t.Errorf("prune with nothing to do: %+v %v", rep, err)
	}

	// A tag moving to another image keeps the old content until prune.
	reg.push(t, "b:1", buildImage(t, "amd64", v1.Config{}, extra, layers[0]))
	b2, err := s.Pull(ctx, reg.ref("b:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b2.ID == b.ID {
		t.Fatal("the tag did not move")
	}
	if _, err := os.Stat(b.Layers[1]); err != nil {
		t.Errorf("old layer gone before prune: %v", err)
	}
	// A mounted layer (a running sandbox) survives prune.
	mnt := t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+b.Layers[1]+":"+b.Layers[0]); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Prune()
	unix.Unmount(mnt, unix.MNT_DETACH)
	if err != nil || rep.Layers != 0 || rep.Blobs != 3 { // old manifest, config, layer blob
		t.Errorf("prune while mounted: %+v %v", rep, err)
	}
	if rep, err = s.Prune(); err != nil || rep.Layers != 1 || rep.Blobs != 0 {
		t.Errorf("prune: %+v %v", rep, err)
	}
	if _, err := os.Stat(b.Layers[1]); !os.IsNotExist(err) {
		t.Errorf("old layer survived prune: %v", err)
	}
	for _, d := range b2.Layers {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("current image lost a layer: %v", err)
		}
	}
}

func TestPullIndexPicksPlatform(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	amd := buildImage(t, "amd64", v1.Config{Env: []string{"ARCH=amd64"}}, layer(t, false, File("arch", "amd64")))
	arm := buildImage(t, "arm64", v1.Config{Env: []string{"ARCH=arm64"}}, layer(t, false, File("arch", "arm64")))
	reg.pushIndex(t, "multi:1", indexOf(t, map[string]v1.Image{"arm64": arm, "amd64": amd}))
	reg.pushIndex(t, "armonly:1", indexOf(t, map[string]v1.Image{"arm64": arm}))
	s := openStore(t)
	img, err := s.Pull(context.Background(), reg.ref("multi:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != digestOf(t, amd).String() || img.Platform != "linux/amd64" || !slices.Equal(img.Config.Env, []string{"ARCH=amd64"}) {
		t.Errorf("picked %s %s %v", img.ID, img.Platform, img.Config.Env)
	}
	b, err := os.ReadFile(filepath.Join(img.Layers[0], "arch"))
	if err != nil || string(b) != "amd64" {
		t.Errorf("arch file %q %v", b, err)
	}
	_, err = s.Pull(context.Background(), reg.ref("armonly:1"), PullOptions{})
	assertClass(t, err, "not found", "linux/amd64")
	// A single-platform image for another architecture is refused.
	reg.push(t, "arm:1", arm)
	_, err = s.Pull(context.Background(), reg.ref("arm:1"), PullOptions{})
	assertClass(t, err, "failed precondition", "linux/arm64")
	assertClean(t, s, img.Name)
}
