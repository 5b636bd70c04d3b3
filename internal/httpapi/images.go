package httpapi

import (
	"context"
	"net/http"
	"strings"
	"unicode"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// maxInsecureRegistries bounds PullImageRequest.InsecureRegistries.
const maxInsecureRegistries = 32

// checkPull validates a pull request.
func checkPull(req api.PullImageRequest) error {
	if err := checkImageName(req.Image); err != nil {
		return err
	}
	if len(req.InsecureRegistries) > maxInsecureRegistries {
		return invalidf("at most %d insecure registries", maxInsecureRegistries)
	}
	for _, r := range req.InsecureRegistries {
		if r == "" || len(r) > 255 || strings.ContainsAny(r, "/@") || strings.IndexFunc(r, func(c rune) bool {
			return unicode.IsSpace(c) || unicode.IsControl(c)
		}) >= 0 {
			return invalidf("invalid insecure registry %q: use host or host:port", r)
		}
	}
	return nil
}

// pullImage serves POST /images/pull: the JSON envelope when the pull is
// done, or with "Accept: text/event-stream" progress as Server-Sent Events
// (see api.EventPullProgress). Request errors are answered as JSON with
// their status; once the stream has started, a failure is an "error"
// event. A client that goes away cancels the pull.
func (s *server) pullImage(w http.ResponseWriter, r *http.Request) {
	var req api.PullImageRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkPull(req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if mediaType(r.Header.Get("Accept")) != "text/event-stream" {
		info, err := s.svc.PullImage(r.Context(), req, nil)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeData(w, http.StatusOK, info)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st := newSSEStream(w, cancel)
	defer st.close()
	st.start()
	info, err := s.svc.PullImage(ctx, req, func(p api.PullProgress) { st.send(api.EventPullProgress, p) })
	if ctx.Err() != nil {
		return // the client is gone
	}
	if err != nil {
		s.streamError(st, r, api.EventPullError, err)
		return
	}
	st.send(api.EventPullDone, info)
}

func (s *server) inspectImage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := checkImageName(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	d, err := s.svc.InspectImage(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if d.Layers == nil {
		d.Layers = []api.ImageLayer{}
	}
	writeData(w, http.StatusOK, d)
}

func (s *server) tagImage(w http.ResponseWriter, r *http.Request) {
	var req api.TagImageRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, n := range []string{req.Source, req.Target} {
		if err := checkImageName(n); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	info, err := s.svc.TagImage(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusCreated, info)
}

func (s *server) pruneImages(w http.ResponseWriter, r *http.Request) {
	rep, err := s.svc.PruneImages(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, rep)
}
