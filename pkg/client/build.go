package client

import (
	"context"

	"github.com/agentkernel/agentkernel/pkg/api"
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
	return imageStream(ctx, c, "/images/build", "build", req, progress)
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
