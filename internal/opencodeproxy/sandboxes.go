package opencodeproxy

import (
	"context"

	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// Sandboxes is what the proxy needs of the sandbox manager: the
// lifecycle of its one sandbox, a background process in it, its published
// port, the image store and the names (never the values) of the vault's
// secrets. internal/sandbox.Manager implements it. Errors are classified
// with pkg/errdefs.
type Sandboxes interface {
	CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error)
	GetSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	RemoveSandbox(ctx context.Context, name string) error

	StartDetached(ctx context.Context, name string, req sandbox.ExecOptions) (api.DetachedCommand, error)
	GetDetached(ctx context.Context, name, id string) (api.DetachedCommand, error)
	DetachedLogs(ctx context.Context, name, id string) (api.DetachedLogs, error)

	SandboxNetwork(ctx context.Context, name string) (api.NetworkInfo, error)
	InspectImage(ctx context.Context, name string) (api.ImageDetails, error)
	ListSecrets(ctx context.Context) ([]api.SecretInfo, error)
}
