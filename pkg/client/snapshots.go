package client

import (
	"context"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// ListSnapshots lists the daemon's filesystem snapshots.
func (c *Client) ListSnapshots(ctx context.Context) ([]api.SnapshotInfo, error) {
	var out []api.SnapshotInfo
	err := c.call(ctx, "GET", "/snapshots", nil, nil, &out)
	return out, err
}

// TakeSnapshot takes a filesystem snapshot of req.Sandbox.
func (c *Client) TakeSnapshot(ctx context.Context, req api.TakeSnapshotRequest) (api.SnapshotInfo, error) {
	var out api.SnapshotInfo
	err := c.call(ctx, "POST", "/snapshots", nil, req, &out)
	return out, err
}

// GetSnapshot describes snapshot name.
func (c *Client) GetSnapshot(ctx context.Context, name string) (api.SnapshotInfo, error) {
	var out api.SnapshotInfo
	if err := api.ValidateSandboxName(name); err != nil {
		return out, err
	}
	err := c.call(ctx, "GET", "/snapshots/"+seg(name), nil, nil, &out)
	return out, err
}

// DeleteSnapshot deletes snapshot name.
func (c *Client) DeleteSnapshot(ctx context.Context, name string) error {
	if err := api.ValidateSandboxName(name); err != nil {
		return err
	}
	return c.call(ctx, "DELETE", "/snapshots/"+seg(name), nil, nil, nil)
}

// RestoreSnapshot creates and starts a sandbox from snapshot name.
func (c *Client) RestoreSnapshot(ctx context.Context, name string, req api.RestoreSnapshotRequest) (api.SandboxInfo, error) {
	var out api.SandboxInfo
	if err := api.ValidateSandboxName(name); err != nil {
		return out, err
	}
	err := c.call(ctx, "POST", "/snapshots/"+seg(name)+"/restore", nil, req, &out)
	return out, err
}

// ForkSandbox snapshots sandbox name and restores it req.Count times.
func (c *Client) ForkSandbox(ctx context.Context, name string, req api.ForkSandboxRequest) (api.ForkSandboxResponse, error) {
	var out api.ForkSandboxResponse
	p, err := sandboxPath(name)
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "POST", p+"/fork", nil, req, &out)
	return out, err
}
