package httpapi

import (
	"context"
	"io"
	"time"

	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// Service is what the HTTP handlers need from the daemon. internal/sandbox's
// Manager implements it; handlers never touch backends or the store
// directly. Every error is classified with pkg/errdefs.
type Service interface {
	CreateSandbox(ctx context.Context, req api.CreateSandboxRequest) (api.SandboxInfo, error)
	ListSandboxes(ctx context.Context) ([]api.SandboxInfo, error)
	GetSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	GetSandboxByUUID(ctx context.Context, uuid string) (api.SandboxInfo, error)
	StartSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	StopSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	PauseSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	ResumeSandbox(ctx context.Context, name string) (api.SandboxInfo, error)
	RemoveSandbox(ctx context.Context, name string) error
	ExtendSandbox(ctx context.Context, name string, by time.Duration) (api.SandboxInfo, error)
	SandboxLogs(ctx context.Context, name string) ([]api.LogEvent, error)

	// Exec starts a process in a running sandbox; the handler streams or
	// buffers its output and must Close it.
	Exec(ctx context.Context, name string, req sandbox.ExecOptions) (sandbox.Process, error)

	StartDetached(ctx context.Context, name string, req sandbox.ExecOptions) (api.DetachedCommand, error)
	ListDetached(ctx context.Context, name string) ([]api.DetachedCommand, error)
	GetDetached(ctx context.Context, name, id string) (api.DetachedCommand, error)
	DetachedLogs(ctx context.Context, name, id string) (api.DetachedLogs, error)
	KillDetached(ctx context.Context, name, id string) error

	// Files. Paths are absolute paths inside the sandbox.
	ReadFile(ctx context.Context, name, path string, max int64) ([]byte, error)
	WriteFile(ctx context.Context, name, path string, mode uint32, r io.Reader) error
	DeleteFile(ctx context.Context, name, path string, recursive bool) error
	ListDir(ctx context.Context, name, path string) ([]api.FileInfo, error)
	Mkdir(ctx context.Context, name, path string) error
	// TarOut writes a tar stream of path to w; TarIn extracts r into dir.
	TarOut(ctx context.Context, name, path string, w io.Writer) error
	TarIn(ctx context.Context, name, dir string, r io.Reader) error

	ListImages(ctx context.Context) ([]api.ImageInfo, error)
	ImportImage(ctx context.Context, req api.ImportImageRequest) (api.ImageInfo, error)
	RemoveImage(ctx context.Context, name string) error
	// PullImage pulls an image from its registry into the store, calling
	// progress (if not nil) as it advances; progress calls are serialised.
	PullImage(ctx context.Context, req api.PullImageRequest, progress func(api.PullProgress)) (api.ImageInfo, error)
	InspectImage(ctx context.Context, name string) (api.ImageDetails, error)
	TagImage(ctx context.Context, req api.TagImageRequest) (api.ImageInfo, error)
	// PruneImages removes blobs and layers no image uses and no running
	// sandbox has mounted.
	PruneImages(ctx context.Context) (api.PruneImagesResponse, error)

	Doctor(ctx context.Context) []api.DoctorCheck
	Backends(ctx context.Context) []api.BackendInfo
}

// ImageBuilder is implemented by a Service that can build images
// (POST /images/build); without it that route answers 501. It is separate
// from Service so that builds stay in the daemon, which owns the image
// store, and the sandbox manager need not know about them.
type ImageBuilder interface {
	// BuildImage builds req.Name, calling progress (if not nil) as the
	// build advances; progress calls are serialised. Requests refused
	// before the build starts return before the first progress call.
	BuildImage(ctx context.Context, req api.BuildImageRequest, progress func(api.BuildProgress)) (api.ImageInfo, error)
}
