package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// builderFake is the fake service plus a scripted image builder. By name:
// "refuse" fails before any progress, "fail" fails after some, "slow"
// waits for its context to end; anything else succeeds after three steps.
type builderFake struct {
	*fakeService
	mu        sync.Mutex
	cancelled bool
}

func (b *builderFake) BuildImage(ctx context.Context, req api.BuildImageRequest, progress func(api.BuildProgress)) (api.ImageInfo, error) {
	if progress == nil {
		progress = func(api.BuildProgress) {}
	}
	switch req.Name {
	case "refuse":
		return api.ImageInfo{}, fmt.Errorf("%w: image %q", errdefs.ErrAlreadyExists, req.Name)
	case "fail":
		progress(api.BuildProgress{Stage: api.BuildStageDownload, Message: "fetching"})
		return api.ImageInfo{}, fmt.Errorf("%w: the mirror is down", errdefs.ErrUnavailable)
	case "slow":
		progress(api.BuildProgress{Stage: api.BuildStageDownload, Message: "fetching"})
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
		}
		b.mu.Lock()
		b.cancelled = ctx.Err() != nil
		b.mu.Unlock()
		return api.ImageInfo{}, ctx.Err()
	}
	for _, st := range []string{api.BuildStageDownload, api.BuildStageInstall, api.BuildStageImport} {
		progress(api.BuildProgress{Stage: st, Message: st + " " + req.Debian.Suite})
	}
	return api.ImageInfo{Name: req.Name, ID: "0123", Size: 42}, nil
}

func buildEnv(t *testing.T, svc Service) *client.Client {
	t.Helper()
	srv := httptest.NewServer(NewHandler(svc, HandlerOptions{}))
	t.Cleanup(srv.Close)
	c, err := client.New(client.WithBaseURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBuildImage(t *testing.T) {
	fake := &builderFake{fakeService: newFake()}
	c := buildEnv(t, fake)
	ctx := testCtx(t)
	deb := &api.DebianSource{Suite: "bookworm", Packages: []string{"python3"}}

	var seen []string
	info, err := c.BuildImage(ctx, api.BuildImageRequest{Name: "py", Debian: deb}, func(p api.BuildProgress) error {
		seen = append(seen, p.Stage+": "+p.Message)
		return nil
	})
	if err != nil || info.Name != "py" || info.Size != 42 {
		t.Fatalf("streamed build: %+v %v", info, err)
	}
	if strings.Join(seen, "|") != "download: download bookworm|install: install bookworm|import: import bookworm" {
		t.Errorf("progress %q", seen)
	}
	if info, err := c.BuildImage(ctx, api.BuildImageRequest{Name: "py2", Debian: deb}, nil); err != nil || info.Name != "py2" {
		t.Errorf("plain build: %+v %v", info, err)
	}

	// Refused before it starts: the class arrives in both modes.
	for _, p := range []func(api.BuildProgress) error{nil, func(api.BuildProgress) error { return nil }} {
		_, err := c.BuildImage(ctx, api.BuildImageRequest{Name: "refuse", Debian: deb}, p)
		if !errors.Is(err, errdefs.ErrAlreadyExists) {
			t.Errorf("refused build (progress %v): %v", p != nil, err)
		}
	}
	// Failed once started: an error event with its class.
	n := 0
	_, err = c.BuildImage(ctx, api.BuildImageRequest{Name: "fail", Debian: deb}, func(api.BuildProgress) error { n++; return nil })
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "mirror is down") || n != 1 {
		t.Errorf("failed build: %v after %d progress events", err, n)
	}
	// Bad requests never reach the builder.
	for _, req := range []api.BuildImageRequest{{Name: "x"}, {Debian: deb}} {
		if _, err := c.BuildImage(ctx, req, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: %v", req, err)
		}
	}

	// A client that stops listening cancels the build.
	stop := errors.New("stop")
	_, err = c.BuildImage(ctx, api.BuildImageRequest{Name: "slow", Debian: deb}, func(api.BuildProgress) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("progress error: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fake.mu.Lock()
		done := fake.cancelled
		fake.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the build was not cancelled when the client went away")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBuildImageNotSupported(t *testing.T) {
	c := buildEnv(t, newFake())
	_, err := c.BuildImage(testCtx(t), api.BuildImageRequest{Name: "x", Debian: &api.DebianSource{Suite: "bookworm"}}, nil)
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("a service without a builder: %v", err)
	}
}
