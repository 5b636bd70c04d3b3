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
