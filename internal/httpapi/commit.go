package httpapi

import (
	"context"
	"net/http"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// SandboxCommitter is implemented by a Service that can save a sandbox's
// changes as an image (POST /sandboxes/{name}/commit); without it that
// route answers 501. Like ImageBuilder it lives in the daemon, which owns
// the image store.
type SandboxCommitter interface {
	CommitSandbox(ctx context.Context, name string, req api.CommitSandboxRequest) (api.ImageInfo, error)
}

// commitSandbox serves POST /sandboxes/{name}/commit.
func (s *server) commitSandbox(w http.ResponseWriter, r *http.Request) {
	c, ok := s.svc.(SandboxCommitter)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server cannot commit sandboxes"})
		return
	}
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req api.CommitSandboxRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkImageName(req.Image); err != nil {
		s.writeError(w, r, err)
		return
	}
	if len(req.Message) > 1024 || hasNUL(req.Message) {
		s.writeError(w, r, invalidf("the commit message must be at most 1024 bytes"))
		return
	}
	info, err := c.CommitSandbox(r.Context(), name, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusCreated, info)
}
