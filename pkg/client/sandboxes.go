package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// Health checks that the daemon answers GET /health with "ok".
func (c *Client) Health(ctx context.Context) error {
	var s string
	if err := c.call(ctx, "GET", "/health", nil, nil, &s); err != nil {
		return err
	}
	if s != "ok" {
		return fmt.Errorf("agentkernel: health check answered %q", s)
	}
	return nil
}

// Run runs a command in a new ephemeral sandbox that is removed afterwards.
func (c *Client) Run(ctx context.Context, req api.RunRequest) (api.RunResponse, error) {
	var out api.RunResponse
	err := c.call(ctx, "POST", "/run", nil, req, &out)
	return out, err
}

// BatchRun runs several commands concurrently, each in its own ephemeral
// sandbox; results are in request order.
func (c *Client) BatchRun(ctx context.Context, req api.BatchRunRequest) (api.BatchRunResponse, error) {
	var out api.BatchRunResponse
	err := c.call(ctx, "POST", "/batch/run", nil, req, &out)
	return out, err
}

// CreateSandbox creates a sandbox (started unless req.Start is false).
func (c *Client) CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error) {
	var out api.SandboxInfo
	err := c.call(ctx, "POST", "/sandboxes", nil, req, &out)
	return out, err
}

// ListSandboxes lists every sandbox.
func (c *Client) ListSandboxes(ctx context.Context) ([]api.SandboxInfo, error) {
	var out []api.SandboxInfo
	err := c.call(ctx, "GET", "/sandboxes", nil, nil, &out)
	return out, err
}

// sandboxPath is "/sandboxes/<name>" plus more escaped segments.
func sandboxPath(name string, more ...string) (string, error) {
	if name == "" {
		return "", errors.New("client: empty sandbox name")
	}
	p := "/sandboxes/" + seg(name)
	for _, m := range more {
		p += "/" + seg(m)
	}
	return p, nil
}

// sandboxInfo calls method on the sandbox route and decodes a SandboxInfo.
func (c *Client) sandboxInfo(ctx context.Context, method, name string, more ...string) (api.SandboxInfo, error) {
	var out api.SandboxInfo
	p, err := sandboxPath(name, more...)
	if err != nil {
		return out, err
	}
	err = c.call(ctx, method, p, nil, nil, &out)
	return out, err
}

// GetSandbox describes one sandbox.
func (c *Client) GetSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	return c.sandboxInfo(ctx, "GET", name)
}

// GetSandboxByUUID describes the sandbox with the given UUID.
func (c *Client) GetSandboxByUUID(ctx context.Context, uuid string) (api.SandboxInfo, error) {
	var out api.SandboxInfo
	if uuid == "" {
		return out, errors.New("client: empty uuid")
	}
	err := c.call(ctx, "GET", "/sandboxes/by-uuid/"+seg(uuid), nil, nil, &out)
	return out, err
}

// StartSandbox starts a stopped sandbox.
func (c *Client) StartSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	return c.sandboxInfo(ctx, "POST", name, "start")
}

// StopSandbox stops a sandbox.
func (c *Client) StopSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	return c.sandboxInfo(ctx, "POST", name, "stop")
}

// PauseSandbox freezes a running sandbox's processes; they keep their
// memory and files.
func (c *Client) PauseSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	return c.sandboxInfo(ctx, "POST", name, "pause")
}

// ResumeSandbox lets a paused sandbox's processes go on where they were.
func (c *Client) ResumeSandbox(ctx context.Context, name string) (api.SandboxInfo, error) {
	return c.sandboxInfo(ctx, "POST", name, "resume")
}

// RemoveSandbox stops and removes a sandbox.
func (c *Client) RemoveSandbox(ctx context.Context, name string) error {
	p, err := sandboxPath(name)
	if err != nil {
		return err
	}
	return c.call(ctx, "DELETE", p, nil, nil, nil)
}

// ExtendSandbox extends a sandbox's time to live by a duration such as
// "30m", "2h" or "1d".
func (c *Client) ExtendSandbox(ctx context.Context, name, by string) (api.ExtendResponse, error) {
	var out api.ExtendResponse
	p, err := sandboxPath(name, "extend")
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "POST", p, nil, api.ExtendRequest{By: by}, &out)
	return out, err
}

// SandboxLogs returns a sandbox's audit events.
func (c *Client) SandboxLogs(ctx context.Context, name string) ([]api.LogEvent, error) {
	var out []api.LogEvent
	p, err := sandboxPath(name, "logs")
	if err != nil {
		return nil, err
	}
	err = c.call(ctx, "GET", p, nil, nil, &out)
	return out, err
}

// Exec runs a command in a sandbox and waits for it. The daemon caps the
// collected output (16 MiB by default); use ExecStream for more.
func (c *Client) Exec(ctx context.Context, name string, req api.ExecRequest) (api.ExecResponse, error) {
	var out api.ExecResponse
	p, err := sandboxPath(name, "exec")
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "POST", p, nil, req, &out)
	return out, err
}

// ExecDetached starts a background command.
func (c *Client) ExecDetached(ctx context.Context, name string, req api.ExecRequest) (api.DetachedCommand, error) {
	var out api.DetachedCommand
	p, err := sandboxPath(name, "exec", "detach")
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "POST", p, nil, req, &out)
	return out, err
}

// ListDetached lists a sandbox's background commands.
func (c *Client) ListDetached(ctx context.Context, name string) ([]api.DetachedCommand, error) {
	var out []api.DetachedCommand
	p, err := sandboxPath(name, "exec", "detached")
	if err != nil {
		return nil, err
	}
	err = c.call(ctx, "GET", p, nil, nil, &out)
	return out, err
}

func detachedPath(name, id string, more ...string) (string, error) {
	if id == "" {
		return "", errors.New("client: empty command id")
	}
	return sandboxPath(name, append([]string{"exec", "detached", id}, more...)...)
}

// GetDetached describes one background command.
func (c *Client) GetDetached(ctx context.Context, name, id string) (api.DetachedCommand, error) {
	var out api.DetachedCommand
	p, err := detachedPath(name, id)
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "GET", p, nil, nil, &out)
	return out, err
}

// DetachedLogs returns a background command's output so far.
func (c *Client) DetachedLogs(ctx context.Context, name, id string) (api.DetachedLogs, error) {
	var out api.DetachedLogs
	p, err := detachedPath(name, id, "logs")
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "GET", p, nil, nil, &out)
	return out, err
}

// KillDetached kills a background command.
func (c *Client) KillDetached(ctx context.Context, name, id string) error {
	p, err := detachedPath(name, id)
	if err != nil {
		return err
	}
	return c.call(ctx, "DELETE", p, nil, nil, nil)
}

// ListImages lists the images in the daemon's store.
func (c *Client) ListImages(ctx context.Context) ([]api.ImageInfo, error) {
	var out []api.ImageInfo
	err := c.call(ctx, "GET", "/images", nil, nil, &out)
	return out, err
}

// ImportImage imports an image from a host directory or tarball that the
// daemon can read.
func (c *Client) ImportImage(ctx context.Context, req api.ImportImageRequest) (api.ImageInfo, error) {
	var out api.ImageInfo
	err := c.call(ctx, "POST", "/images/import", nil, req, &out)
	return out, err
}

// RemoveImage removes an image; a name with slashes is escaped as one
// path segment.
func (c *Client) RemoveImage(ctx context.Context, name string) error {
	if name == "" {
		return errors.New("client: empty image name")
	}
	return c.call(ctx, "DELETE", "/images/"+seg(name), nil, nil, nil)
}

// Doctor returns the daemon's checks of the host's prerequisites.
// Backends lists the daemon's backends and what each can do.
func (c *Client) Backends(ctx context.Context) ([]api.BackendInfo, error) {
	var out []api.BackendInfo
	err := c.call(ctx, "GET", "/backends", nil, nil, &out)
	return out, err
}

func (c *Client) Doctor(ctx context.Context) ([]api.DoctorCheck, error) {
	var out []api.DoctorCheck
	err := c.call(ctx, "GET", "/doctor", nil, nil, &out)
	return out, err
}

// boolQuery is a query with key=1.
func boolQuery(key string) url.Values { return url.Values{key: {"1"}} }
