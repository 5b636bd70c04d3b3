package client

import (
	"context"
	"net/url"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// ListVolumes lists the daemon's named volumes.
func (c *Client) ListVolumes(ctx context.Context) ([]api.VolumeInfo, error) {
	var out []api.VolumeInfo
	err := c.call(ctx, "GET", "/volumes", nil, nil, &out)
	return out, err
}

// CreateVolume makes a named volume of req.Size (upstream's spelling, as
// 512MB; empty for the default).
func (c *Client) CreateVolume(ctx context.Context, req api.CreateVolumeRequest) (api.VolumeInfo, error) {
	var out api.VolumeInfo
	if err := api.ValidateVolumeName(req.Name); err != nil {
		return out, err
	}
	err := c.call(ctx, "POST", "/volumes", nil, req, &out)
	return out, err
}

// GetVolume describes volume name.
func (c *Client) GetVolume(ctx context.Context, name string) (api.VolumeInfo, error) {
	var out api.VolumeInfo
	if err := api.ValidateVolumeName(name); err != nil {
		return out, err
	}
	err := c.call(ctx, "GET", "/volumes/"+seg(name), nil, nil, &out)
	return out, err
}

// DeleteVolume deletes volume name and its data; force deletes it while
// sandboxes use it (see api.DeleteVolumeResponse).
func (c *Client) DeleteVolume(ctx context.Context, name string, force bool) (api.DeleteVolumeResponse, error) {
	var out api.DeleteVolumeResponse
	if err := api.ValidateVolumeName(name); err != nil {
		return out, err
	}
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	err := c.call(ctx, "DELETE", "/volumes/"+seg(name), q, nil, &out)
	return out, err
}
