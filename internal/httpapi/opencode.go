package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// OpenCodeProxy serves the /opencode routes: OpenCode's server API, in a
// sandbox it provisions (internal/opencodeproxy). The handler takes care
// of the token (also accepted as the basic-auth password there) and
// strips the /opencode prefix; the proxy gets the rest of the request as
// it came.
type OpenCodeProxy interface {
	// ServeHTTP proxies r, whose path is the one below /opencode ("/"
	// for /opencode itself).
	http.Handler
	// Teardown removes the proxy's sandbox (DELETE /opencode).
	Teardown(ctx context.Context) error
}

const openCodePrefix = "/opencode"

func (s *server) openCodeProxy(w http.ResponseWriter, r *http.Request) OpenCodeProxy {
	if s.opts.OpenCode == nil {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server has no OpenCode proxy"})
	}
	return s.opts.OpenCode
}

// openCode serves every method of /opencode and /opencode/{path...}.
func (s *server) openCode(w http.ResponseWriter, r *http.Request) {
	p := s.openCodeProxy(w, r)
	if p == nil {
		return
	}
	u := *r.URL
	u.Path = belowOpenCode(u.Path)
	if u.RawPath != "" {
		u.RawPath = belowOpenCode(u.RawPath)
	}
	r2 := r.WithContext(r.Context())
	r2.URL = &u
	p.ServeHTTP(w, r2)
}

func belowOpenCode(p string) string {
	if p = strings.TrimPrefix(p, openCodePrefix); p == "" {
		return "/"
	}
	return p
}

// openCodeTeardown serves DELETE /opencode.
func (s *server) openCodeTeardown(w http.ResponseWriter, r *http.Request) {
	p := s.openCodeProxy(w, r)
	if p == nil {
		return
	}
	if err := p.Teardown(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, "")
}

// mcp serves /mcp, every method, with the MCP handler the daemon gave.
func (s *server) mcp(w http.ResponseWriter, r *http.Request) {
	if s.opts.MCP == nil {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server has no MCP endpoint"})
		return
	}
	s.opts.MCP.ServeHTTP(w, r)
}
