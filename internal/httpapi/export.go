package httpapi

import (
	"context"
	"io"
	"net/http"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// SandboxExporter is implemented by a Service that can write a sandbox's
// whole filesystem as a tar (GET /sandboxes/{name}/export); without it
// that route answers 501. It lives in the daemon, which owns the image
// store the sandbox's layers are in.
type SandboxExporter interface {
	ExportSandbox(ctx context.Context, name string, w io.Writer) error
}

// exportSandbox serves GET /sandboxes/{name}/export.
func (s *server) exportSandbox(w http.ResponseWriter, r *http.Request) {
	e, ok := s.svc.(SandboxExporter)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server cannot export sandboxes"})
		return
	}
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	lw := &lazyWriter{w: w}
	if err := e.ExportSandbox(r.Context(), name, lw); err != nil {
		if !lw.started {
			s.writeError(w, r, err)
			return
		}
		// The status is sent: break the response so the client sees a
		// failed transfer, not a short tar.
		s.log.Error("export stream failed", "sandbox", name, "err", err)
		panic(http.ErrAbortHandler)
	}
	if !lw.started {
		lw.start()
	}
}
