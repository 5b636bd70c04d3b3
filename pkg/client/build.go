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

// BuildImage builds an image in the daemon (see api.BuildImageRequest)
// and returns it once it is in the store. With a progress function the
// daemon streams the build's steps as Server-Sent Events and progress is
// called with each, in order, from the calling goroutine; a progress error
// stops the build (the connection is dropped) and is returned. Cancelling
// ctx stops the build too. A request the daemon refuses before building
// fails with the error's class, as any call does.
func (c *Client) BuildImage(ctx context.Context, req api.BuildImageRequest, progress func(api.BuildProgress) error) (api.ImageInfo, error) {
	var out api.ImageInfo
	if progress == nil {
		err := c.call(ctx, "POST", "/images/build", nil, req, &out)
		return out, err
	}
	b, err := json.Marshal(req)
	if err != nil {
		return out, fmt.Errorf("client: encoding the request: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.send(ctx, request{method: "POST", path: "/images/build", body: bytes.NewReader(b),
		contentType: "application/json", accept: "text/event-stream"})
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	switch mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt {
	case "application/json":
		// Done before any progress.
		return out, decodeEnvelope(resp, &out)
	case "text/event-stream":
	default:
		return out, fmt.Errorf("agentkernel: /images/build answered %q, not an event stream", resp.Header.Get("Content-Type"))
	}
	end := errors.New("end")
	var result error
	err = readSSE(resp.Body, func(event string, data []byte) error {
		switch event {
		case api.EventProgress:
			var p api.BuildProgress
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
			var e api.ImageErrorEvent
			if json.Unmarshal(data, &e) != nil || e.Message == "" {
				e.Message = "build failed: " + string(data)
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
	return out, fmt.Errorf("agentkernel: the build stream ended before its done event: %w", io.ErrUnexpectedEOF)
}

// CommitSandbox saves the changes of sandbox name as a new layer on top
// of its image, published as req.Image (see api.CommitSandboxRequest).
func (c *Client) CommitSandbox(ctx context.Context, name string, req api.CommitSandboxRequest) (api.ImageInfo, error) {
	var out api.ImageInfo
	p, err := sandboxPath(name)
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "POST", p+"/commit", nil, req, &out)
	return out, err
}
