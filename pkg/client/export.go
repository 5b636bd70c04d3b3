package client

import (
	"context"
	"io"
)

// ExportSandbox returns the whole filesystem of sandbox name (a container
// sandbox: its image's layers and its changes merged, without /proc, /sys,
// /dev and /.agentkernel) as a tar stream. The caller reads and closes it;
// a transfer that fails part way ends in a read error, not a short tar.
func (c *Client) ExportSandbox(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := sandboxPath(name, "export")
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, request{method: "GET", path: p, accept: ctTar})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
