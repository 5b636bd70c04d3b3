package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sys/unix"

	. "github.com/agentkernel/agentkernel/internal/image/imagetest"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func indexOf(t *testing.T, imgs map[string]v1.Image) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for arch, img := range imgs {
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return mutate.AppendManifests(empty.Index, adds...)
}

// assertClass checks err's class (by its errdefs text) and that its
// message contains each of words.
func assertClass(t *testing.T, err error, class string, words ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", class)
	}
	var want error
	for _, c := range []error{errdefs.ErrNotFound, errdefs.ErrInvalidArgument, errdefs.ErrPermissionDenied,
		errdefs.ErrUnavailable, errdefs.ErrFailedPrecondition, errdefs.ErrTooLarge} {
		if c.Error() == class {
			want = c
		}
	}
	if class != "" && !errors.Is(err, want) {
		t.Errorf("error %q is not %s", err, class)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// assertClean checks that the store holds only the images named keep (and
// the host image), only their blobs and layers, and nothing in tmp/.
func assertClean(t *testing.T, s *Store, keep ...string) {
	t.Helper()
	imgs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	refs := map[string]bool{}
	for _, img := range imgs[1:] {
		if !containsStr(keep, img.Name) {
			t.Errorf("image %s left behind", img.Name)
		}
		for _, k := range img.refs() {
			refs[k] = true
		}
	}
	s.blobs.Walk(func(d v1.Hash, _ int64) error {
		if !refs[blobKey(d.String())] {
			t.Errorf("blob %s left behind", d)
		}
		return nil
	})
	for _, sub := range []string{"layers", "layerinfo", "tmp"} {
		entries, _ := os.ReadDir(s.dir(sub))
		for _, e := range entries {
			if sub == "tmp" || !refs[layerKey(strings.TrimSuffix(e.Name(), ".json"))] {
				t.Errorf("%s/%s left behind", sub, e.Name())
			}
		}
	}
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestPullUnknownAndDown(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	reg.push(t, "known:1", buildImage(t, "amd64", v1.Config{}, layer(t, false, File("f", "x"))))
	s := openStore(t)
	ctx := context.Background()
	_, err := s.Pull(ctx, reg.ref("nosuch:1"), PullOptions{})
	assertClass(t, err, "not found", "nosuch")
	_, err = s.Pull(ctx, reg.ref("known:2"), PullOptions{})
	assertClass(t, err, "not found", "known:2")

	down := httptest.NewServer(http.NotFoundHandler())
	host := strings.TrimPrefix(down.URL, "http://")
	down.Close()
	_, err = s.Pull(ctx, host+"/x:1", PullOptions{Retry: fastRetry})
	assertClass(t, err, "unavailable", "cannot reach registry "+host)
	_, err = s.Pull(ctx, "Not A Reference", PullOptions{})
	assertClass(t, err, "invalid argument")
	assertClean(t, s)
}

func TestPullAuth(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	reg.push(t, "private:1", buildImage(t, "amd64", v1.Config{}, layer(t, false, File("secret", "s"))))
	reg.wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "pw" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	s := openStore(t)
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	_, err := s.Pull(context.Background(), reg.ref("private:1"), PullOptions{})
	assertClass(t, err, "permission denied", "refused access", "docker login")
	assertClean(t, s)

	// Wrong credentials in ~/.docker/config.json: refused too.
	writeDockerConfig(t, cfgDir, reg.host, "alice:wrong")
	_, err = s.Pull(context.Background(), reg.ref("private:1"), PullOptions{})
	assertClass(t, err, "permission denied")
	// The right ones, read through the default keychain.
	writeDockerConfig(t, cfgDir, reg.host, "alice:pw")
	img, err := s.Pull(context.Background(), reg.ref("private:1"), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertClean(t, s, img.Name)
}

func writeDockerConfig(t *testing.T, dir, host, userPass string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(userPass))
	cfg := `{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPullCorruptBlob(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	good := layer(t, false, File("good", "g"))
	bad := layer(t, false, File("big", strings.Repeat("corrupt me ", 5000)))
	reg.push(t, "c:1", buildImage(t, "amd64", v1.Config{}, good, bad))
	target := "/blobs/" + digestOf(t, bad).String()
	reg.wrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, target) {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			b[len(b)/2] ^= 0x40
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(b)
		})
	})
	s := openStore(t)
	_, err := s.Pull(context.Background(), reg.ref("c:1"), PullOptions{Retry: fastRetry})
	assertClass(t, err, "invalid argument", digestOf(t, bad).String(), "does not match its digest")
	assertClean(t, s)

	// A layer whose content does not match the config's diff-id.
	reg.wrap(nil)
	img := buildImage(t, "amd64", v1.Config{}, good, bad)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[1] = cf.RootFS.DiffIDs[0]
	lying, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	reg.push(t, "c:2", lying)
	_, err = s.Pull(context.Background(), reg.ref("c:2"), PullOptions{})
	assertClass(t, err, "invalid argument", "the config says")
	assertClean(t, s)
}

func TestPullHostileLayers(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	outside := t.TempDir()
	cases := map[string][]Entry{
		"dotdot":                 {File("../../escape", "x")},
		"absolute":               {File(outside+"/abs", "x")},
		"absolute symlink write": {Link("etc", outside), File("etc/passwd", "pwned")},
		"relative symlink write": {Link("etc", "../../../../../../.."+outside), File("etc/passwd", "pwned")},
		"hardlink out":           {Hard("h", "../../../etc/shadow")},
		"whiteout via symlink":   {Link("d", outside), Whiteout("d", "victim")},
		"uid out of range":       {func() Entry { e := File("f", "x"); e.Hdr.Uid = 70000; return e }()},
	}
	s := openStore(t)
	fine := layer(t, false, File("fine", "ok"))
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			repo := "hostile/" + strings.ReplaceAll(name, " ", "-") + ":1"
			reg.push(t, repo, buildImage(t, "amd64", v1.Config{}, fine, layer(t, false, entries...)))
			_, err := s.Pull(context.Background(), reg.ref(repo), PullOptions{})
			assertClass(t, err, "invalid argument")
			assertClean(t, s)
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("written outside: %v", entries)
			}
		})
	}
}

// TestPullFullDisk pulls into a store on a small tmpfs.
func TestPullFullDisk(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	s, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, 6<<20) // incompressible: 6 MiB compressed and unpacked
	rand.Read(noise)
	reg := newRegistry(t)
	reg.push(t, "big:1", buildImage(t, "amd64", v1.Config{}, layer(t, false, File("small", "s")), layer(t, false, File("noise", string(noise)))))
	_, err = s.Pull(context.Background(), reg.ref("big:1"), PullOptions{Jobs: 1})
	assertClass(t, err, "", "no space left on device", "image store at "+root+" is full")
	assertClean(t, s)
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil || st.Blocks-st.Bfree > 64 {
		t.Errorf("%d blocks still used on the store's tmpfs (%v)", st.Blocks-st.Bfree, err)
	}
	// With room again (a smaller image), pulls work.
	reg.push(t, "small:1", buildImage(t, "amd64", v1.Config{}, layer(t, false, File("small", "s")), layer(t, false, File("f", "f"))))
	if _, err := s.Pull(context.Background(), reg.ref("small:1"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestPlainHTTPPolicy(t *testing.T) {
	for reg, want := range map[string]bool{
		"localhost:5000": true, "127.0.0.1:5000": true, "127.1.2.3": true, "[::1]:5000": true,
		"10.0.0.1:5000": false, "192.168.1.10": false, "registry.local:5000": false, "ghcr.io": false,
		"myreg:5000": true, // listed below
	} {
		if got := plainHTTPAllowed(reg, []string{"myreg:5000"}); got != want {
			t.Errorf("plainHTTPAllowed(%q) = %v", reg, got)
		}
	}
	called := false
	g := httpGuard{base: roundTripFunc(func(*http.Request) (*http.Response, error) { called = true; return nil, errors.New("sent") })}
	req, _ := http.NewRequest("GET", "http://10.0.0.1:5000/v2/", bytes.NewReader(nil))
	_, err := g.RoundTrip(req)
	if called || !errors.Is(err, errdefs.ErrPermissionDenied) || !strings.Contains(err.Error(), "--insecure-registry 10.0.0.1:5000") {
		t.Errorf("plain HTTP to a private address: called %v, err %v", called, err)
	}
	req, _ = http.NewRequest("GET", "https://10.0.0.1:5000/v2/", nil)
	if _, err := g.RoundTrip(req); !called || err == nil || err.Error() != "sent" {
		t.Errorf("HTTPS was not passed on: %v", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestFamiliar(t *testing.T) {
	for in, want := range map[string]string{
		"python:3.12": "python:3.12", "python": "python:latest", "docker.io/library/python:3": "python:3",
		"index.docker.io/user/app": "user/app:latest", "library/a/b": "library/a/b:latest",
		"ghcr.io/o/r:1": "ghcr.io/o/r:1", "localhost:5000/x": "localhost:5000/x:latest",
		"alpine@sha256:" + strings.Repeat("a", 64): "alpine@sha256:" + strings.Repeat("a", 64),
	} {
		ref, err := ParseReference(in, nil)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got := Familiar(ref); got != want {
			t.Errorf("Familiar(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPullClaimedDiffIDOfStoredLayer: a layer whose blob is new but whose
// config names the diff-id of a layer already unpacked in the store is
// still checked against that diff-id: an image cannot pass off content of
// its own as a layer the store has (found as a flaky run of
// TestPullCorruptBlob, when its two layers raced for one diff-id).
func TestPullClaimedDiffIDOfStoredLayer(t *testing.T) {
	requireRoot(t)
	reg := newRegistry(t)
	good := layer(t, false, File("good", "g"))
	other := layer(t, false, File("other", "not the good layer"))
	reg.push(t, "d:good", buildImage(t, "amd64", v1.Config{}, good))
	img := buildImage(t, "amd64", v1.Config{}, good, other)
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.RootFS.DiffIDs[1] = cf.RootFS.DiffIDs[0]
	lying, err := mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	reg.push(t, "d:lying", lying)
	s := openStore(t)
	if _, err := s.Pull(context.Background(), reg.ref("d:good"), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Pull(context.Background(), reg.ref("d:lying"), PullOptions{})
	assertClass(t, err, "invalid argument", "the config says")
}
