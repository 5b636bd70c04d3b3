package client

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"

	"github.com/agentkernel/agentkernel/pkg/api"
)

const (
	ctOctet = "application/octet-stream"
	ctTar   = "application/x-tar"
)

func filesPath(name, p string) (string, error) {
	base, err := sandboxPath(name, "files")
	if err != nil {
		return "", err
	}
	return base + "/" + filePath(p), nil
}

// ReadFile reads a file from a sandbox as raw bytes. The daemon refuses
// files over its body limit (16 MiB by default); use TarOut for those.
func (c *Client) ReadFile(ctx context.Context, name, path string) ([]byte, error) {
	p, err := filesPath(name, path)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, request{method: "GET", path: p, accept: ctOctet})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("agentkernel: reading %s: %w", path, err)
	}
	if len(b) > maxResponseBytes {
		return nil, fmt.Errorf("agentkernel: reading %s: more than %d bytes", path, maxResponseBytes)
	}
	return b, nil
}

// unixMode converts mode to a Unix mode: Go's ModeSetuid, ModeSetgid and
// ModeSticky, or the Unix bits 07000 written directly (0o4755).
func unixMode(mode os.FileMode) uint32 {
	m := uint32(mode & 0o7777)
	if mode&os.ModeSetuid != 0 {
		m |= 0o4000
	}
	if mode&os.ModeSetgid != 0 {
		m |= 0o2000
	}
	if mode&os.ModeSticky != 0 {
		m |= 0o1000
	}
	return m
}

// WriteFile writes data to a file in a sandbox, streaming it raw. A zero
// mode means 0644. The daemon bounds the size (16 MiB by default); use
// TarIn for more.
func (c *Client) WriteFile(ctx context.Context, name, path string, data io.Reader, mode os.FileMode) error {
	p, err := filesPath(name, path)
	if err != nil {
		return err
	}
	var q url.Values
	if mode != 0 {
		q = url.Values{"mode": {"0" + strconv.FormatUint(uint64(unixMode(mode)), 8)}}
	}
	resp, err := c.send(ctx, request{method: "PUT", path: p, query: q, body: data, contentType: ctOctet, accept: "application/json"})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeEnvelope(resp, nil)
}

// DeleteFile deletes a file, or with recursive a directory tree.
func (c *Client) DeleteFile(ctx context.Context, name, path string, recursive bool) error {
	p, err := filesPath(name, path)
	if err != nil {
		return err
	}
	var q url.Values
	if recursive {
		q = boolQuery("recursive")
	}
	return c.call(ctx, "DELETE", p, q, nil, nil)
}

// ListDir lists a directory.
func (c *Client) ListDir(ctx context.Context, name, path string) ([]api.FileInfo, error) {
	p, err := filesPath(name, path)
	if err != nil {
		return nil, err
	}
	var out []api.FileInfo
	err = c.call(ctx, "GET", p, boolQuery("list"), nil, &out)
	return out, err
}

// Mkdir makes a directory and its parents.
func (c *Client) Mkdir(ctx context.Context, name, path string) error {
	p, err := filesPath(name, path)
	if err != nil {
		return err
	}
	return c.call(ctx, "PUT", p, boolQuery("dir"), nil, nil)
}

// WriteFiles writes several utf8 files (path → content) in one request.
func (c *Client) WriteFiles(ctx context.Context, name string, files map[string]string) (api.BatchFileWriteResponse, error) {
	var out api.BatchFileWriteResponse
	p, err := sandboxPath(name, "files")
	if err != nil {
		return out, err
	}
	err = c.call(ctx, "POST", p, nil, api.BatchFileWriteRequest{Files: files}, &out)
	return out, err
}

// TarOut streams path (a file or a directory tree) out of a sandbox as a
// tar archive. The caller reads and closes it; a transfer that fails part
// way ends in a read error, not a short archive.
func (c *Client) TarOut(ctx context.Context, name, path string) (io.ReadCloser, error) {
	p, err := sandboxPath(name, "archive")
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, request{method: "GET", path: p, query: url.Values{"path": {path}}, accept: ctTar})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// TarIn extracts the tar archive read from r into dir inside a sandbox.
func (c *Client) TarIn(ctx context.Context, name, dir string, r io.Reader) error {
	p, err := sandboxPath(name, "archive")
	if err != nil {
		return err
	}
	resp, err := c.send(ctx, request{method: "PUT", path: p, query: url.Values{"path": {dir}}, body: r, contentType: ctTar, accept: "application/json"})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return decodeEnvelope(resp, nil)
}
