package sandbox

import (
	"encoding/json"
	"fmt"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// withImageDefaults fills in what req leaves empty from the sandbox's
// image, as Docker does for a container's processes: the working
// directory, the user, and, for a request with no command, the image's
// Entrypoint followed by its Cmd.
func withImageDefaults(rec store.Sandbox, req ExecOptions) (ExecOptions, error) {
	if req.Workdir != "" && req.User != "" && len(req.Argv) > 0 {
		return req, nil
	}
	var spec backend.Spec
	if err := json.Unmarshal(rec.Spec, &spec); err != nil {
		return req, fmt.Errorf("sandbox %s: reading its spec: %w", rec.Name, err)
	}
	if req.Workdir == "" {
		req.Workdir = spec.Workdir
	}
	if req.User == "" {
		req.User = spec.User
	}
	if len(req.Argv) == 0 {
		if len(spec.Cmd) == 0 {
			return req, fmt.Errorf("%w: no command given, and image %q has no Entrypoint or Cmd", errdefs.ErrInvalidArgument, rec.Image)
		}
		req.Argv = append([]string(nil), spec.Cmd...)
	}
	return req, nil
}
