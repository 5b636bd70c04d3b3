package httpapi

import (
	"context"
	"net/http"
	"path/filepath"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// buildImage serves POST /images/build (see api.BuildImageRequest). A
// client that goes away cancels the build.
func (s *server) buildImage(w http.ResponseWriter, r *http.Request) {
	builder, ok := s.svc.(ImageBuilder)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server cannot build images"})
		return
	}
	var req api.BuildImageRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Name == "" {
		s.writeError(w, r, invalidf("the image name is missing"))
		return
	}
	if (req.Debian == nil) == (req.Dockerfile == nil) {
		s.writeError(w, r, invalidf("say what to build from: exactly one of debian or dockerfile"))
		return
	}
	if err := s.checkBuildSources(&req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if mediaType(r.Header.Get("Accept")) != "text/event-stream" {
		info, err := builder.BuildImage(r.Context(), req, nil)
		if r.Context().Err() != nil {
			return // the client is gone; so is the build
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeData(w, http.StatusCreated, info)
		return
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	bs := newSSEStream(w, cancel)
	defer bs.close()
	info, err := builder.BuildImage(ctx, req, func(p api.BuildProgress) { bs.send(api.EventProgress, p) })
	if ctx.Err() != nil {
		return // the client is gone (or stopped reading); so is the build
	}
	if !bs.started() {
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeData(w, http.StatusCreated, info)
		return
	}
	if err != nil {
		s.streamError(bs, r, api.EventError, err)
		return
	}
	bs.send(api.EventDone, info)
}

// checkBuildSources applies the host-path rules to a Dockerfile build's
// context and Dockerfile (see hostpath.go), replacing them with their
// resolved paths, and keeps remote callers to the host's own Debian mirror:
// a mirror URL would have the daemon fetch from any address it can reach.
func (s *server) checkBuildSources(req *api.BuildImageRequest) error {
	if d := req.Debian; d != nil && d.Mirror != "" && s.remoteCaller() {
		return &classError{class: errdefs.ErrPermissionDenied,
			msg: "debian.mirror is accepted only over the daemon's Unix socket; over TCP builds use the host's own mirror"}
	}
	d := req.Dockerfile
	if d == nil {
		return nil
	}
	ctxDir, err := s.checkHostPath("build context", d.Context)
	if err != nil {
		return err
	}
	file := d.Dockerfile
	if file == "" {
		file = "Dockerfile"
	}
	if !filepath.IsAbs(file) {
		file = filepath.Join(d.Context, file)
	}
	if file, err = s.checkHostPath("dockerfile", file); err != nil {
		return err
	}
	d.Context, d.Dockerfile = ctxDir, file
	return nil
}
