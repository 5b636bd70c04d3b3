package integration

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// helloSrc is the program the test image runs: it prints what the image
// config and layers should have given it.
const helloSrc = `package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	wd, _ := os.Getwd()
	_, err := os.Stat("/etc/removed")
	fmt.Printf("args=%s cwd=%s uid=%d gid=%d foo=%s removed=%v\n",
		strings.Join(os.Args[1:], ","), wd, os.Getuid(), os.Getgid(), os.Getenv("FOO"), os.IsNotExist(err))
}
`

// imageRegistry is go-containerregistry's registry on loopback, with a
// swappable wrapper for failures.
type imageRegistry struct {
	host string
	mu   sync.Mutex
	wrap func(http.Handler) http.Handler
}

func newImageRegistry(t *testing.T) *imageRegistry {
	t.Helper()
	r := &imageRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		wrap := r.wrap
		r.mu.Unlock()
		if wrap != nil {
			wrap(reg).ServeHTTP(w, req)
			return
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func (r *imageRegistry) setWrap(w func(http.Handler) http.Handler) {
	r.mu.Lock()
	r.wrap = w
	r.mu.Unlock()
}

func (r *imageRegistry) push(t *testing.T, repo string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(r.host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return r.host + "/" + repo
}

// tarLayer is a gzip layer of entries; a body makes a regular file.
func tarLayer(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type tarEntry struct {
	hdr  tar.Header
	body []byte
}

func dirEntry(n string, uid int) tarEntry {
	return tarEntry{hdr: tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid, Gid: uid}}
}

func fileEntry(n string, mode int64, body []byte) tarEntry {
	return tarEntry{hdr: tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: mode}, body: body}
}

// helloImage builds the test image: a base layer, and a layer with the
// static hello binary that also deletes /etc/removed.
func helloImage(t *testing.T) v1.Image {
	t.Helper()
	hello := buildStatic(t, helloSrc)
	base := tarLayer(t, dirEntry("etc/", 0), fileEntry("etc/removed", 0o644, []byte("gone soon")),
		fileEntry("etc/passwd", 0o644, []byte("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/work:/bin/sh\n")),
		dirEntry("tmp/", 0))
	app := tarLayer(t, dirEntry("bin/", 0), fileEntry("bin/hello", 0o755, hello), dirEntry("work/", 1000),
		dirEntry("etc/", 0), fileEntry("etc/.wh.removed", 0o644, nil))
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"PATH=/bin", "FOO=bar"}, WorkingDir: "/work", User: "1000:1000",
			Entrypoint: []string{"/bin/hello"}, Cmd: []string{"default-arg"}}})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, base, app); err != nil {
		t.Fatal(err)
	}
	return img
}

// buildStatic builds the Go program src (package main, standard library
// only) as a static binary and returns it.
func buildStatic(t *testing.T, src string) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "prog")
	cmd := exec.Command("go", "build", "-o", bin, "main.go")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building a test program: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storeLeftovers lists what a failed pull may have left in the home's
// image store: staging, unpacked layers and blobs beyond those of keep.
func storeLeftovers(t *testing.T, e *env, layersBefore, blobsBefore int) []string {
	t.Helper()
	var out []string
	root := filepath.Join(e.home, "images")
	if tmp, _ := os.ReadDir(filepath.Join(root, "tmp")); len(tmp) > 0 {
		out = append(out, "tmp: "+tmp[0].Name())
	}
	if l, _ := os.ReadDir(filepath.Join(root, "layers")); len(l) != layersBefore {
		out = append(out, "layers changed")
	}
	if b, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256")); len(b) != blobsBefore {
		out = append(out, "blobs changed")
	}
	return out
}

func countDir(p string) int {
	e, _ := os.ReadDir(p)
	return len(e)
}

// TestImagePullAndRun pulls an image the test assembled from a registry on
// loopback through the real daemon and runs it: the config's Env,
// WorkingDir, User and Entrypoint+Cmd apply, the whiteout hides a base
// file.
func TestImagePullAndRun(t *testing.T) {
	requireEnv(t)
	reg := newImageRegistry(t)
	ref := reg.push(t, "it/hello:1", helloImage(t))

	shared.ok(t, "image", "pull", ref)
	t.Cleanup(func() { shared.ak(t, "image", "rm", ref) })
	if r := shared.ok(t, "image", "ls"); !strings.Contains(r.stdout, ref) {
		t.Errorf("image ls does not list %s:\n%s", ref, r.stdout)
	}
	var d api.ImageDetails
	r := shared.ok(t, "image", "inspect", ref)
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || len(d.Layers) != 2 || d.Config == nil ||
		d.Config.WorkingDir != "/work" || d.Platform != "linux/amd64" {
		t.Errorf("inspect: %v %+v", err, d)
	}

	r = shared.ak(t, "run", "--image", ref, "--", "/bin/hello", "a", "b")
	if want := "args=a,b cwd=/work uid=1000 gid=1000 foo=bar removed=true\n"; r.code != 0 || r.stdout != want {
		t.Errorf("run: want %q\n%v", want, r)
	}
	// An explicit workdir and user win over the image's.
	r = shared.ak(t, "run", "--image", ref, "-w", "/tmp", "--", "/bin/hello")
	if want := "args= cwd=/tmp uid=1000 gid=1000 foo=bar removed=true\n"; r.code != 0 || r.stdout != want {
		t.Errorf("run -w /tmp: want %q\n%v", want, r)
	}
	shared.create(t, "it-image-user", "--image", ref)
	r = shared.ak(t, "exec", "-u", "0", "it-image-user", "--", "/bin/hello", "x")
	if want := "args=x cwd=/work uid=0 gid=0 foo=bar removed=true\n"; r.code != 0 || r.stdout != want {
		t.Errorf("exec -u 0: want %q\n%v", want, r)
	}
	shared.ok(t, "sandbox", "remove", "it-image-user")
	// POST /run without a command runs Entrypoint + Cmd.
	status, body, _ := apiCall(t, shared, "POST", "/run", "application/json", strings.NewReader(`{"image":"`+ref+`"}`))
	var env struct {
		Data api.RunResponse `json:"data"`
	}
	json.Unmarshal([]byte(body), &env)
	if want := "args=default-arg cwd=/work uid=1000 gid=1000 foo=bar removed=true\n"; status != 200 || env.Data.Stdout != want {
		t.Errorf("POST /run without a command: %d %s", status, body)
	}
	// So does the CLI's run with an image and no command.
	r = shared.ak(t, "run", "--image", ref)
	if want := "args=default-arg cwd=/work uid=1000 gid=1000 foo=bar removed=true\n"; r.code != 0 || r.stdout != want {
		t.Errorf("run --image without a command: want %q\n%v", want, r)
	}

	// Pulling again is instant and shares everything; rm and prune empty
	// the store.
	images := filepath.Join(shared.home, "images")
	layers := countDir(filepath.Join(images, "layers"))
	shared.ok(t, "image", "tag", ref, "it-hello:copy")
	shared.ok(t, "image", "pull", ref)
	if n := countDir(filepath.Join(images, "layers")); n != layers {
		t.Errorf("layers %d -> %d after a second pull and a tag", layers, n)
	}
	shared.ok(t, "image", "rm", ref)
	shared.ok(t, "image", "rm", "it-hello:copy")
	shared.ok(t, "image", "prune")
	if n := countDir(filepath.Join(images, "layers")); n >= layers {
		t.Errorf("layers %d -> %d after rm and prune", layers, n)
	}
}

// TestImagePullFailures: an unknown image, a registry that is down, an
// auth failure and a corrupt blob each fail with a clear message and
// leave nothing in the store.
func TestImagePullFailures(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir) // read by the daemon this test starts
	reg := newImageRegistry(t)
	ref := reg.push(t, "it/hello:1", helloImage(t))
	e.ok(t, "image", "ls") // starts the daemon
	images := filepath.Join(e.home, "images")
	layers, blobs := countDir(filepath.Join(images, "layers")), countDir(filepath.Join(images, "blobs", "sha256"))

	down := httptest.NewServer(http.NotFoundHandler())
	downHost := strings.TrimPrefix(down.URL, "http://")
	down.Close()
	for _, c := range []struct{ ref, want string }{
		{reg.host + "/it/nosuch:1", "not found"},
		{downHost + "/it/hello:1", "cannot reach registry " + downHost},
		{"Bad/Name:1", "could not parse reference"},
	} {
		r := e.ak(t, "image", "pull", c.ref)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("pull %s: want exit 1 and %q\n%v", c.ref, c.want, r)
		}
	}
	// Basic auth: refused without credentials, accepted with them.
	reg.setWrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "bob" || p != "pw" {
				w.Header().Set("WWW-Authenticate", `Basic realm="it"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"who are you"}]}`, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	if r := e.ak(t, "image", "pull", ref); r.code != 1 || !strings.Contains(r.stderr, "refused access") {
		t.Errorf("pull without credentials:\n%v", r)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("bob:pw"))
	os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(`{"auths":{"`+reg.host+`":{"auth":"`+auth+`"}}}`), 0o600)
	e.ok(t, "image", "pull", ref)
	e.ok(t, "image", "rm", ref)
	if problems := storeLeftovers(t, e, layers, blobs); len(problems) > 0 {
		t.Errorf("failed pulls left %v", problems)
	}
	// A corrupt blob (one byte flipped in every blob answer).
	reg.setWrap(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.Contains(r.URL.Path, "/blobs/") || r.Method != http.MethodGet {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			b := rec.Body.Bytes()
			if len(b) > 1000 {
				b[len(b)/2] ^= 1
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(b)
		})
	})
	if r := e.ak(t, "image", "pull", ref); r.code != 1 || !strings.Contains(r.stderr, "does not match its digest") {
		t.Errorf("pull of a corrupt blob:\n%v", r)
	}
	if r := e.ok(t, "image", "ls"); strings.Contains(r.stdout, "it/") {
		t.Errorf("a failed pull is listed:\n%s", r.stdout)
	}
	if problems := storeLeftovers(t, e, layers, blobs); len(problems) > 0 {
		t.Errorf("failed pulls left %v", problems)
	}
	if r := e.ak(t, "run", "--image", reg.host+"/it/nosuch:1", "--", "true"); r.code != 125 || !strings.Contains(r.stderr, "image pull") {
		t.Errorf("run with an image not pulled:\n%v", r)
	}
	// With the right credentials and an honest registry it works.
	reg.setWrap(nil)
	e.ok(t, "image", "pull", ref)
}

// TestRunPullsMissingImage: `run --image` of an image not in the store
// pulls it from its registry, saying so, and runs; an image no registry
// has fails with both reasons.
func TestRunPullsMissingImage(t *testing.T) {
	requireEnv(t)
	reg := newImageRegistry(t)
	ref := reg.push(t, "it/autopull:1", helloImage(t))
	t.Cleanup(func() { shared.ak(t, "image", "rm", ref) })
	r := shared.ak(t, "run", "--image", ref, "--", "/bin/hello", "pulled")
	if want := "args=pulled cwd=/work uid=1000 gid=1000 foo=bar removed=true\n"; r.code != 0 || r.stdout != want {
		t.Fatalf("run of an image not pulled yet: want %q\n%v", want, r)
	}
	if !strings.Contains(r.stderr, "pulling") {
		t.Errorf("run did not say it pulled: %q", r.stderr)
	}
	if ls := shared.ok(t, "image", "ls"); !strings.Contains(ls.stdout, ref) {
		t.Errorf("the pulled image is not in the store:\n%s", ls.stdout)
	}
	r = shared.ak(t, "run", "--image", reg.host+"/it/nosuch:1", "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "pulling") {
		t.Errorf("run of an image no registry has: %v", r)
	}
}
