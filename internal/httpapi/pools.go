package httpapi

import (
	"context"
	"net/http"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// PoolManager is implemented by a Service that keeps warm pools
// (GET/PUT /pools); without it those routes answer 501.
type PoolManager interface {
	ListPools(ctx context.Context) []api.PoolInfo
	SetPool(ctx context.Context, req api.SetPoolRequest) (api.PoolInfo, error)
}

func (s *server) poolManager(w http.ResponseWriter, r *http.Request) (PoolManager, bool) {
	pm, ok := s.svc.(PoolManager)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server keeps no warm pools"})
	}
	return pm, ok
}

// listPools serves GET /pools.
func (s *server) listPools(w http.ResponseWriter, r *http.Request) {
	pm, ok := s.poolManager(w, r)
	if !ok {
		return
	}
	pools := pm.ListPools(r.Context())
	if pools == nil {
		pools = []api.PoolInfo{}
	}
	writeData(w, http.StatusOK, pools)
}

// setPool serves PUT /pools: one pool's size (0 drains it).
func (s *server) setPool(w http.ResponseWriter, r *http.Request) {
	pm, ok := s.poolManager(w, r)
	if !ok {
		return
	}
	var req api.SetPoolRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Size < 0 || req.Size > api.MaxPoolSize {
		s.writeError(w, r, invalidf("pool size %d: from 0 to %d", req.Size, api.MaxPoolSize))
		return
	}
	if req.Image != "" {
		if err := checkImageName(req.Image); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	info, err := pm.SetPool(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, info)
}
