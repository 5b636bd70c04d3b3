package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Image is the image the config asks for: sandbox.base_image, else the
// image of sandbox.runtime, else "" (the daemon's default).
func (c *Config) Image() string {
	if c.Sandbox.BaseImage != "" {
		return c.Sandbox.BaseImage
	}
	return runtimeImages[c.Sandbox.Runtime]
}

// Request is the create request the config asks for: image, profile and
// resources. The caller sets the name and overrides what its flags say.
func (c *Config) Request() api.CreateSandboxRequest {
	req := api.CreateSandboxRequest{Name: c.Sandbox.Name, Image: c.Image(), Profile: c.Security.Profile}
	if v := c.Resources.VCPUs; v != nil {
		req.VCPUs = int(*v)
	}
	if v := c.Resources.MemoryMB; v != nil {
		req.MemoryMB = int(*v)
	}
	if v := c.Resources.DiskMB; v != nil {
		req.DiskMB = int(*v)
	}
	if n := c.Security.Network; n != nil && !*n {
		// Enforced, not ignored: no gateway, loopback only.
		req.Network = &api.NetworkPolicy{Profile: "none"}
	}
	for _, p := range c.Network.Ports {
		spec, _ := publishSpec(p) // checked by Parse
		req.Publish = append(req.Publish, spec)
	}
	if d := c.Security.Domains; !d.empty() {
		// The gateway enforces upstream's rules: allow and block as
		// --allow and --block; allowlist_only drops the profile's own
		// allow-list (registries and git hosts), leaving the rules alone.
		req.Network = &api.NetworkPolicy{Allow: d.Allow, Block: d.Block}
		if d.AllowlistOnly {
			req.Network.Profile = "restrictive"
		}
	}
	return req
}

// NeedsRunning reports whether applying the config needs a running
// sandbox: it has files to copy or an init script to run.
func (c *Config) NeedsRunning() bool {
	return len(c.Files) > 0 || strings.TrimSpace(c.Sandbox.InitScript) != ""
}

// Copy is one checked [[files]] entry.
type Copy struct {
	// Source is the host file, absolute, with every symlink resolved.
	Source string
	Dest   string
	Mode   fs.FileMode
	Size   int64
}

// ResolveFiles checks every [[files]] source and returns what to copy.
// A source must be a regular file inside Dir once symlinks are resolved,
// at most MaxCopyBytes, and all of them together at most MaxTotalCopy.
// A config without a Dir (a template) cannot have files.
func (c *Config) ResolveFiles() ([]Copy, error) {
	if len(c.Files) == 0 {
		return nil, nil
	}
	if c.Dir == "" {
		return nil, fmt.Errorf("%w: [[files]] needs a config file to be relative to; templates cannot carry files", errdefs.ErrInvalidArgument)
	}
	root, err := filepath.EvalSymlinks(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("config directory: %w", err)
	}
	var out []Copy
	var total int64
	for i, f := range c.Files {
		at := fmt.Sprintf("files[%d] (%s)", i, f.Source)
		src := f.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(c.Dir, src)
		}
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%w: %s: no such file", errdefs.ErrNotFound, at)
			}
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if !within(root, real) {
			return nil, fmt.Errorf("%w: %s: the source must be inside %s, the config's directory", errdefs.ErrPermissionDenied, at, c.Dir)
		}
		fi, err := os.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: %s is not a regular file", errdefs.ErrInvalidArgument, at)
		}
		if fi.Size() > MaxCopyBytes {
			return nil, fmt.Errorf("%w: %s is larger than %d bytes; use agentkernel cp", errdefs.ErrTooLarge, at, MaxCopyBytes)
		}
		if total += fi.Size(); total > MaxTotalCopy {
			return nil, fmt.Errorf("%w: [[files]] add up to more than %d bytes; use agentkernel cp", errdefs.ErrTooLarge, MaxTotalCopy)
		}
		mode, _ := parseMode(f.Mode)
		out = append(out, Copy{Source: real, Dest: f.Dest, Mode: fs.FileMode(mode), Size: fi.Size()})
	}
	return out, nil
}

// Open opens the source for reading and checks again that it is a regular
// file of at most MaxCopyBytes (it may have changed since ResolveFiles).
func (cp Copy) Open() (*os.File, error) {
	f, err := os.OpenFile(cp.Source, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && (!fi.Mode().IsRegular() || fi.Size() > MaxCopyBytes) {
		err = fmt.Errorf("%w: %s changed: no longer a regular file within bounds", errdefs.ErrInvalidArgument, cp.Source)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// within reports whether p is root or below it (both clean and absolute).
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// publishSpec turns one of upstream's [network] ports, "HOSTPORT:SANDBOXPORT"
// or "SANDBOXPORT", into a create request's publish entry (HOSTPORT 0 picks
// a free port). UDP ("53/udp") is refused: the gateway publishes TCP only.
func publishSpec(s string) (string, error) {
	host, sb, ok := strings.Cut(s, ":")
	if !ok {
		host, sb = "0", s
	}
	hp, err1 := strconv.ParseUint(host, 10, 16)
	sp, err2 := strconv.ParseUint(sb, 10, 16)
	if err1 != nil || err2 != nil || sp == 0 {
		return "", fmt.Errorf("invalid port %q: want HOSTPORT:SANDBOXPORT or SANDBOXPORT, TCP only", s)
	}
	return fmt.Sprintf("%d:%d", hp, sp), nil
}
