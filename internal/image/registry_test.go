package image

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/agentkernel/agentkernel/internal/image/imagetest"
)

// testRegistry is go-containerregistry's in-memory registry on loopback,
// behind an optional wrapper, counting the blob downloads it serves.
type testRegistry struct {
	host string
	srv  *httptest.Server

	mu        sync.Mutex
	blobGets  map[string]int // digest -> GETs
	wrapper   func(http.Handler) http.Handler
	wrapperMu sync.Mutex
}

func newRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{blobGets: map[string]int{}}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
			r.mu.Lock()
			r.blobGets[req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]]++
			r.mu.Unlock()
		}
		r.wrapperMu.Lock()
		wrap := r.wrapper
		r.wrapperMu.Unlock()
		if wrap != nil {
			wrap(reg).ServeHTTP(w, req)
			return
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

// wrap puts h in front of the registry for the requests that follow.
func (r *testRegistry) wrap(h func(http.Handler) http.Handler) {
	r.wrapperMu.Lock()
	r.wrapper = h
	r.wrapperMu.Unlock()
}

func (r *testRegistry) gets(d v1.Hash) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGets[d.String()]
}

func (r *testRegistry) ref(repo string) string { return r.host + "/" + repo }

// push writes img (or an index) to the registry as repo.
func (r *testRegistry) push(t *testing.T, repo string, img v1.Image) {
	t.Helper()
	ref, err := name.ParseReference(r.ref(repo), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
}

func (r *testRegistry) pushIndex(t *testing.T, repo string, idx v1.ImageIndex) {
	t.Helper()
	ref, err := name.ParseReference(r.ref(repo), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
}

// layer makes a layer from tar entries, gzip-compressed unless zstd.
func layer(t *testing.T, zstd bool, entries ...imagetest.Entry) v1.Layer {
	t.Helper()
	b := imagetest.Tar(t, entries...)
	opts := []tarball.LayerOption{}
	if zstd {
		opts = append(opts, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// buildImage stacks layers on an empty linux/arch image with cfg.
func buildImage(t *testing.T, arch string, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "linux", Architecture: arch, Config: cfg, Created: v1.Time{Time: time.Unix(1700000000, 0).UTC()},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestOf(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func diffIDOf(t *testing.T, l v1.Layer) v1.Hash {
	t.Helper()
	h, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// fastRetry keeps tests against a dead registry short.
var fastRetry = &remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1}
