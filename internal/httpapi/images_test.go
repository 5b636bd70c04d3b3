package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// The fake's images: PullImage of "nosuch…" fails with not found, of
// "slow…" waits until the request is cancelled (then records it in
// pullCancelled); anything else reports three progress events and stores
// the image.

func (f *fakeService) PullImage(ctx context.Context, req api.PullImageRequest, progress func(api.PullProgress)) (api.ImageInfo, error) {
	switch {
	case strings.HasPrefix(req.Image, "nosuch"):
		return api.ImageInfo{}, fmt.Errorf("%w: image %s not found in registry", errdefs.ErrNotFound, req.Image)
	case strings.HasPrefix(req.Image, "slow"):
		if progress != nil {
			progress(api.PullProgress{Status: "resolved", Total: 1})
		}
		<-ctx.Done()
		f.mu.Lock()
		f.pullCancelled = true
		f.mu.Unlock()
		return api.ImageInfo{}, ctx.Err()
	}
	if progress != nil {
		progress(api.PullProgress{Status: "resolved", Total: 1})
		progress(api.PullProgress{Layer: "sha256:aa", Status: "downloading", Current: 5, Total: 10})
		progress(api.PullProgress{Layer: "sha256:aa", Status: "done", Current: 10, Total: 10})
	}
	im := api.ImageInfo{Name: req.Image, ID: "sha256:" + strings.Repeat("cd", 32), Size: 10,
		Source: "registry/" + req.Image + strings.Join(req.InsecureRegistries, ","), CreatedAt: time.Unix(1700000000, 0).UTC()}
	f.mu.Lock()
	f.images[req.Image] = im
	f.mu.Unlock()
	return im, nil
}

func (f *fakeService) InspectImage(_ context.Context, name string) (api.ImageDetails, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	im, ok := f.images[name]
	if !ok {
		return api.ImageDetails{}, notFound("image " + name)
	}
	return api.ImageDetails{ImageInfo: im, Digest: im.ID, Platform: "linux/amd64",
		Layers: []api.ImageLayer{{ID: "aa", Digest: "sha256:aa", Size: 10}},
		Config: &api.ImageConfig{Env: []string{"A=1"}, Cmd: []string{"sh"}}}, nil
}

func (f *fakeService) TagImage(_ context.Context, req api.TagImageRequest) (api.ImageInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	im, ok := f.images[req.Source]
	if !ok {
		return api.ImageInfo{}, notFound("image " + req.Source)
	}
	im.Name = req.Target
	f.images[req.Target] = im
	return im, nil
}

func (f *fakeService) PruneImages(context.Context) (api.PruneImagesResponse, error) {
	return api.PruneImagesResponse{Blobs: 2, Layers: 1, Bytes: 42}, nil
}

func TestImageRoutes(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	ctx := testCtx(t)
	c := e.client

	// Streamed: the progress events arrive in order, then the image.
	var got []string
	im, err := c.PullImage(ctx, api.PullImageRequest{Image: "python:3.12", InsecureRegistries: []string{"reg:5000"}},
		func(p api.PullProgress) error {
			got = append(got, fmt.Sprintf("%s %s %d/%d", p.Layer, p.Status, p.Current, p.Total))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{" resolved 0/1", "sha256:aa downloading 5/10", "sha256:aa done 10/10"}
	if strings.Join(got, "|") != strings.Join(want, "|") || im.Name != "python:3.12" || im.Source != "registry/python:3.12reg:5000" {
		t.Errorf("events %q, image %+v", got, im)
	}
	// Buffered.
	if im, err = c.PullImage(ctx, api.PullImageRequest{Image: "alpine"}, nil); err != nil || im.Name != "alpine" {
		t.Errorf("buffered pull: %+v %v", im, err)
	}
	// An error keeps its class across the stream and the envelope.
	_, err = c.PullImage(ctx, api.PullImageRequest{Image: "nosuch:1"}, func(api.PullProgress) error { return nil })
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "nosuch:1 not found") {
		t.Errorf("streamed error: %v", err)
	}
	if _, err = c.PullImage(ctx, api.PullImageRequest{Image: "nosuch:1"}, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("buffered error: %v", err)
	}
	for _, bad := range []api.PullImageRequest{{Image: ""}, {Image: "a b"}, {Image: "x", InsecureRegistries: []string{"a/b"}},
		{Image: "x", InsecureRegistries: []string{""}}} {
		if _, err := c.PullImage(ctx, bad, func(api.PullProgress) error { return nil }); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("pull %+v: %v", bad, err)
		}
	}
	// A progress callback's error stops the pull and comes back.
	stop := errors.New("stop")
	if _, err := c.PullImage(ctx, api.PullImageRequest{Image: "alpine"}, func(api.PullProgress) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("progress error: %v", err)
	}

	d, err := c.InspectImage(ctx, "python:3.12")
	if err != nil || d.Digest != im.ID || len(d.Layers) != 1 || d.Config == nil || d.Config.Cmd[0] != "sh" {
		t.Errorf("inspect: %+v %v", d, err)
	}
	if _, err := c.InspectImage(ctx, "ghcr.io/no/such:1"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("inspect missing: %v", err)
	}
	if tagged, err := c.TagImage(ctx, "python:3.12", "ghcr.io/me/py:1"); err != nil || tagged.Name != "ghcr.io/me/py:1" {
		t.Errorf("tag: %+v %v", tagged, err)
	}
	if d, err := c.InspectImage(ctx, "ghcr.io/me/py:1"); err != nil || d.Name != "ghcr.io/me/py:1" {
		t.Errorf("inspect a name with slashes: %+v %v", d, err)
	}
	if _, err := c.TagImage(ctx, "python:3.12", ""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("tag to nothing: %v", err)
	}
	if rep, err := c.PruneImages(ctx); err != nil || rep.Bytes != 42 {
		t.Errorf("prune: %+v %v", rep, err)
	}
	for _, p := range []string{"POST /images/pull", "GET /images/{name}", "POST /images/tag", "POST /images/prune"} {
		if !e.patterns[p] {
			t.Errorf("%s not served", p)
		}
	}
}

// TestPullCancelledWithClient: a client that goes away stops the pull.
func TestPullCancelledWithClient(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() {
		_, err := e.client.PullImage(ctx, api.PullImageRequest{Image: "slow:1"}, func(p api.PullProgress) error {
			cancel() // after the first event
			return nil
		})
		done <- err
	}()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.fake.mu.Lock()
		c := e.fake.pullCancelled
		e.fake.mu.Unlock()
		if c {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the service's pull was not cancelled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Plain requests still get JSON errors with their status.
	resp, body := e.do(t, "POST", "/images/pull", []byte(`{"image":"x","bogus":1}`), map[string]string{"Content-Type": "application/json", "Accept": "text/event-stream"})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "bogus") {
		t.Errorf("unknown field: %d %s", resp.StatusCode, body)
	}
}
