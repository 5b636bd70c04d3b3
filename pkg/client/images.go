package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// PullImage pulls req.Image from its registry into the daemon's store and
// returns it once it is stored. With a progress function the daemon
// streams progress as Server-Sent Events and progress is called for each
// one, in order, from the calling goroutine; a progress error stops the
// pull (the connection is dropped) and is returned. Cancelling ctx stops
// the pull too.
func (c *Client) PullImage(ctx context.Context, req api.PullImageRequest, progress func(api.PullProgress) error) (api.ImageInfo, error) {
	var out api.ImageInfo
	if progress == nil {
		err := c.call(ctx, "POST", "/images/pull", nil, req, &out)
		return out, err
	}
	return imageStream(ctx, c, "/images/pull", "pull", req, progress)
}

// InspectImage describes an image: its layers and config.
func (c *Client) InspectImage(ctx context.Context, name string) (api.ImageDetails, error) {
	var out api.ImageDetails
	if name == "" {
		return out, errors.New("client: empty image name")
	}
	err := c.call(ctx, "GET", "/images/"+seg(name), nil, nil, &out)
	return out, err
}

// TagImage gives the image source a second name, target.
func (c *Client) TagImage(ctx context.Context, source, target string) (api.ImageInfo, error) {
	var out api.ImageInfo
	err := c.call(ctx, "POST", "/images/tag", nil, api.TagImageRequest{Source: source, Target: target}, &out)
	return out, err
}

// PruneImages removes the blobs and unpacked layers that no image uses
// and no running sandbox has mounted.
func (c *Client) PruneImages(ctx context.Context) (api.PruneImagesResponse, error) {
	var out api.PruneImagesResponse
	err := c.call(ctx, "POST", "/images/prune", nil, nil, &out)
	return out, err
}

// imageStream runs a daemon operation that produces an image and can
// stream its progress as Server-Sent Events (pull, build): progress events
// go to progress in order, then "done" carries the image or "error" the
// failure with its class. A JSON answer is a refusal (or a result) given
// before any progress.
func imageStream[P any](ctx context.Context, c *Client, path, what string, req any, progress func(P) error) (api.ImageInfo, error) {
	var out api.ImageInfo
	b, err := json.Marshal(req)
	if err != nil {
		return out, fmt.Errorf("client: encoding the request: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.send(ctx, request{method: "POST", path: path, body: bytes.NewReader(b),
		contentType: "application/json", accept: "text/event-stream"})
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	switch mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt {
	case "application/json":
		return out, decodeEnvelope(resp, &out)
	case "text/event-stream":
	default:
		return out, fmt.Errorf("agentkernel: %s answered %q, not an event stream", path, resp.Header.Get("Content-Type"))
	}
	end := errors.New("end")
	var result error
	err = readSSE(resp.Body, func(event string, data []byte) error {
		switch event {
		case api.EventProgress:
			var p P
			if err := json.Unmarshal(data, &p); err != nil {
				return fmt.Errorf("agentkernel: bad progress event: %w", err)
			}
			return progress(p)
		case api.EventDone:
			if err := json.Unmarshal(data, &out); err != nil {
				return fmt.Errorf("agentkernel: bad done event: %w", err)
			}
			return end
		case api.EventError:
			var e api.ErrorEvent
			if json.Unmarshal(data, &e) != nil || e.Message == "" {
				e.Message = what + " failed: " + string(data)
			}
			result = &errdefs.Remote{Class: errdefs.FromCode(e.Code), Message: e.Message}
			return end
		}
		return nil
	})
	switch {
	case errors.Is(err, end):
		return out, result
	case err != nil:
		return out, err
	}
	return out, fmt.Errorf("agentkernel: the %s stream ended before its done event: %w", what, io.ErrUnexpectedEOF)
}
