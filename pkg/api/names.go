package api

import (
	"fmt"
	"regexp"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// ReservedSandboxName is the path segment of the by-UUID lookup
// (GET /sandboxes/by-uuid/{uuid}); no sandbox may take it.
const ReservedSandboxName = "by-uuid"

// sandboxNameRE is what a sandbox name may look like: it becomes part of
// paths, host names and URLs, so it is kept to a safe alphabet.
var sandboxNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ValidateSandboxName checks a sandbox name: 1 to 63 letters, digits, '_',
// '.' or '-', starting with a letter or digit, and not
// ReservedSandboxName. It is the one rule, applied by the server, the
// sandbox manager, the CLI and MCP; the error wraps
// errdefs.ErrInvalidArgument and quotes at most 64 bytes of name.
func ValidateSandboxName(name string) error {
	if sandboxNameRE.MatchString(name) && name != ReservedSandboxName {
		return nil
	}
	shown := name
	if len(shown) > 64 {
		shown = fmt.Sprintf("%s… (%d bytes)", shown[:64], len(name))
	}
	return fmt.Errorf("%w: invalid sandbox name %q: use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit (and not %q)",
		errdefs.ErrInvalidArgument, shown, ReservedSandboxName)
}

// Upstream agentkernel's backend names. Where the meaning fits they map to
// ours, so upstream's scripts and clients keep working; where it does not,
// they are refused with the reason rather than "unknown backend".
var (
	upstreamBackends = map[string]struct{ ours, note string }{
		"docker":      {"container", "runc with a user namespace; no Docker engine is used"},
		"podman":      {"container", "runc with a user namespace; no Podman is used"},
		"firecracker": {"microvm", "its own kernel under QEMU's microvm machine, not Firecracker"},
	}
	upstreamBackendRefused = map[string]string{
		"apple":      "Apple's container framework runs only on macOS; this daemon is Linux",
		"hyperlight": "Hyperlight runs WebAssembly guests, not Linux programs; use microvm for a VM boundary",
	}
)

// UpstreamBackend maps an upstream backend name to ours, with a note on
// what it means here; any other name comes back unchanged with no note
// (the daemon checks it against its backends). apple and hyperlight are
// errdefs.ErrNotImplemented, saying why. The server and the CLI share it.
func UpstreamBackend(name string) (ours, note string, err error) {
	if b, ok := upstreamBackends[name]; ok {
		return b.ours, b.note, nil
	}
	if why, ok := upstreamBackendRefused[name]; ok {
		return "", "", fmt.Errorf("%w: backend %q is not offered: %s", errdefs.ErrNotImplemented, name, why)
	}
	return name, "", nil
}
