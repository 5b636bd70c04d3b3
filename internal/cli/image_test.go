package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// The host service's images: PullImage of "nosuch…" is not found; others
// report progress and succeed, recording the request.

func (s *hostService) PullImage(ctx context.Context, req api.PullImageRequest, progress func(api.PullProgress)) (api.ImageInfo, error) {
	if strings.HasPrefix(req.Image, "nosuch") {
		return api.ImageInfo{}, fmt.Errorf("%w: image %s not found in registry index.docker.io", errdefs.ErrNotFound, req.Image)
	}
	if progress != nil {
		progress(api.PullProgress{Status: "resolved", Total: 1})
		progress(api.PullProgress{Layer: "sha256:0123456789abcdef", Status: "downloading", Current: 1 << 20, Total: 2 << 20})
		progress(api.PullProgress{Layer: "sha256:0123456789abcdef", Status: "done", Current: 2 << 20, Total: 2 << 20})
	}
	return api.ImageInfo{Name: req.Image, ID: "sha256:feed", Source: strings.Join(req.InsecureRegistries, ",")}, nil
}

func (s *hostService) InspectImage(ctx context.Context, name string) (api.ImageDetails, error) {
	return api.ImageDetails{ImageInfo: api.ImageInfo{Name: name}, Digest: "sha256:feed", Layers: []api.ImageLayer{{ID: "aa"}}}, nil
}

func (s *hostService) TagImage(ctx context.Context, req api.TagImageRequest) (api.ImageInfo, error) {
	return api.ImageInfo{Name: req.Target, Source: req.Source}, nil
}

func (s *hostService) PruneImages(ctx context.Context) (api.PruneImagesResponse, error) {
	return api.PruneImagesResponse{Blobs: 3, Layers: 2, Bytes: 5 << 20}, nil
}

func TestImageCommands(t *testing.T) {
	_, sock := startDaemon(t)
	// Not a terminal: no progress, just the name.
	out, errOut, code := cli(t, nil, "--socket", sock, "image", "pull", "--insecure-registry", "r:5000", "python:3.12")
	if code != 0 || out != "python:3.12\n" || errOut != "" {
		t.Fatalf("pull: %d %q %q", code, out, errOut)
	}
	out, _, code = cli(t, nil, "--socket", sock, "--json", "image", "pull", "--insecure-registry", "a", "--insecure-registry", "b", "x:1")
	var img api.ImageInfo
	if code != 0 || json.Unmarshal([]byte(out), &img) != nil || img.Source != "a,b" {
		t.Fatalf("pull --json: %d %q", code, out)
	}
	_, errOut, code = cli(t, nil, "--socket", sock, "image", "pull", "nosuch:1")
	if code != 1 || !strings.Contains(errOut, "nosuch:1 not found") {
		t.Fatalf("pull of a missing image: %d %q", code, errOut)
	}
	out, _, code = cli(t, nil, "--socket", sock, "image", "inspect", "ghcr.io/a/b:1")
	var d api.ImageDetails
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || d.Name != "ghcr.io/a/b:1" || len(d.Layers) != 1 {
		t.Fatalf("inspect: %d %q", code, out)
	}
	out, _, code = cli(t, nil, "--socket", sock, "image", "tag", "python:3.12", "mine:1")
	if code != 0 || out != "mine:1\n" {
		t.Fatalf("tag: %d %q", code, out)
	}
	out, _, code = cli(t, nil, "--socket", sock, "image", "prune")
	if code != 0 || out != "Removed 2 layers and 3 blobs, 5.0 MiB\n" {
		t.Fatalf("prune: %d %q", code, out)
	}
}

func TestPullBars(t *testing.T) {
	var buf bytes.Buffer
	b := newPullBars(&buf)
	b.update(api.PullProgress{Status: "resolved", Total: 2})
	b.update(api.PullProgress{Layer: "sha256:aaaaaaaaaaaaaaaa", Status: "waiting", Total: 2048})
	b.update(api.PullProgress{Layer: "sha256:bbbbbbbbbbbbbbbb", Status: "exists", Current: 10, Total: 10})
	b.update(api.PullProgress{Layer: "sha256:aaaaaaaaaaaaaaaa", Status: "downloading", Current: 1024, Total: 2048})
	b.finish()
	screen := buf.String()
	last := screen[strings.LastIndex(screen, "\x1b[2A"):]
	want := "\x1b[2A\x1b[2Kaaaaaaaaaaaa  downloading [===============               ] 1.0 KiB / 2.0 KiB\n" +
		"\x1b[2Kbbbbbbbbbbbb  exists      [==============================] 10 B / 10 B\n"
	if last != want {
		t.Errorf("last frame:\n%q\nwant\n%q", last, want)
	}
}
