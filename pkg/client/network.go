package client

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// SandboxNetwork describes a sandbox's network: its egress policy (the
// running gateway's while it runs), published ports, secret bindings
// (never values) and the gateway's counters.
func (c *Client) SandboxNetwork(ctx context.Context, name string) (api.NetworkInfo, error) {
	var out api.NetworkInfo
	p, err := sandboxPath(name, "network")
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "GET", p, nil, nil, &out)
	return out, err
}

// SetSandboxNetwork replaces a sandbox's egress policy, at once on its
// running gateway and for its later starts. An empty Profile keeps the
// current one.
func (c *Client) SetSandboxNetwork(ctx context.Context, name string, policy api.NetworkPolicy) (api.NetworkInfo, error) {
	var out api.NetworkInfo
	p, err := sandboxPath(name, "network")
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "PUT", p, nil, policy, &out)
	return out, err
}

// NetworkLog returns the last limit events of a sandbox's network audit
// log, oldest first; limit 0 means the server's default (200).
func (c *Client) NetworkLog(ctx context.Context, name string, limit int) ([]api.NetworkEvent, error) {
	var out []api.NetworkEvent
	p, err := sandboxPath(name, "network", "log")
	if err != nil {
		return nil, err
	}
	var q url.Values
	if limit > 0 {
		q = url.Values{"limit": {strconv.Itoa(limit)}}
	}
	err = c.call(ctx, "GET", p, q, nil, &out)
	return out, err
}

// The secret routes answer only on the daemon's Unix socket; over TCP they
// fail with errdefs.ErrPermissionDenied.

// ListSecrets lists the daemon's secrets without their values.
func (c *Client) ListSecrets(ctx context.Context) ([]api.SecretInfo, error) {
	var out []api.SecretInfo
	err := c.call(ctx, "GET", "/secrets", nil, nil, &out)
	return out, err
}

// GetSecret returns a secret's value.
func (c *Client) GetSecret(ctx context.Context, name string) (string, error) {
	if name == "" {
		return "", errors.New("client: empty secret name")
	}
	var out api.SecretValue
	err := c.call(ctx, "GET", "/secrets/"+seg(name), nil, nil, &out)
	return out.Value, err
}

// SetSecret stores a secret in the daemon's vault (encrypted at rest).
func (c *Client) SetSecret(ctx context.Context, name, value string) (api.SecretInfo, error) {
	var out api.SecretInfo
	if name == "" {
		return out, errors.New("client: empty secret name")
	}
	err := c.call(ctx, "PUT", "/secrets/"+seg(name), nil, api.SetSecretRequest{Value: value}, &out)
	return out, err
}

// DeleteSecret removes a secret from the daemon's vault.
func (c *Client) DeleteSecret(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("client: empty secret name")
	}
	return c.call(ctx, "DELETE", "/secrets/"+seg(name), nil, nil, nil)
}
