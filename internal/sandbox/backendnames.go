package sandbox

import (
	"fmt"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Upstream agentkernel's backend names. Where the meaning fits they map to
// ours, so upstream scripts and configs keep working; where it does not,
// they are refused with the reason rather than "unknown backend".
var (
	upstreamBackendAliases = map[string]string{
		"docker":      "container", // an OCI container; we run it with runc, no Docker engine
		"podman":      "container",
		"firecracker": "microvm", // its own kernel per sandbox; we run it under QEMU's microvm machine
	}
	upstreamBackendRefused = map[string]string{
		"apple":      "Apple's container framework runs only on macOS; this daemon is Linux",
		"hyperlight": "Hyperlight runs WebAssembly guests, not Linux programs; use microvm for a VM boundary",
	}
)

// upstreamBackend maps an upstream backend name to ours; other names pass
// through unchanged (checked against the daemon's backends later).
func upstreamBackend(name string) (string, error) {
	if ours, ok := upstreamBackendAliases[name]; ok {
		return ours, nil
	}
	if why, ok := upstreamBackendRefused[name]; ok {
		return "", fmt.Errorf("%w: backend %q is not offered: %s", errdefs.ErrNotImplemented, name, why)
	}
	return name, nil
}
