package client

import (
	"context"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// ListPools reports the daemon's warm pools (GET /pools).
func (c *Client) ListPools(ctx context.Context) ([]api.PoolInfo, error) {
	var out []api.PoolInfo
	err := c.call(ctx, "GET", "/pools", nil, nil, &out)
	return out, err
}

// SetPool sets one warm pool's size; 0 drains it (PUT /pools).
func (c *Client) SetPool(ctx context.Context, req api.SetPoolRequest) (api.PoolInfo, error) {
	var out api.PoolInfo
	err := c.call(ctx, "PUT", "/pools", nil, req, &out)
	return out, err
}
