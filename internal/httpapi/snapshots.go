package httpapi

import (
	"context"
	"net/http"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// SnapshotService is implemented by a Service that can take filesystem
// snapshots (commits kept in the image store) and restore them; without
// it the /snapshots routes and fork answer 501.
type SnapshotService interface {
	TakeSnapshot(ctx context.Context, req api.TakeSnapshotRequest) (api.SnapshotInfo, error)
	ListSnapshots(ctx context.Context) ([]api.SnapshotInfo, error)
	GetSnapshot(ctx context.Context, name string) (api.SnapshotInfo, error)
	DeleteSnapshot(ctx context.Context, name string) error
	RestoreSnapshot(ctx context.Context, name string, req api.RestoreSnapshotRequest) (api.SandboxInfo, error)
	ForkSandbox(ctx context.Context, name string, req api.ForkSandboxRequest) (api.ForkSandboxResponse, error)
}

func (s *server) snapshots(w http.ResponseWriter, r *http.Request) (SnapshotService, bool) {
	ss, ok := s.svc.(SnapshotService)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server cannot take snapshots"})
	}
	return ss, ok
}

func (s *server) listSnapshots(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.snapshots(w, r)
	if !ok {
		return
	}
	out, err := ss.ListSnapshots(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, out)
}

func (s *server) takeSnapshot(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.snapshots(w, r)
	if !ok {
		return
	}
	var req api.TakeSnapshotRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkName(req.Sandbox); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Name != "" {
		if err := checkName(req.Name); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	info, err := ss.TakeSnapshot(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusCreated, info)
}

func (s *server) getSnapshot(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.snapshots(w, r)
	if !ok {
		return
	}
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := ss.GetSnapshot(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, info)
}

func (s *server) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.snapshots(w, r)
	if !ok {
		return
	}
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := ss.DeleteSnapshot(r.Context(), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, "Snapshot deleted")
}

func (s *server) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.snapshots(w, r)
	if !ok {
		return
	}
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req api.RestoreSnapshotRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.As != "" {
		if err := checkName(req.As); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	info, err := ss.RestoreSnapshot(r.Context(), name, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusCreated, info)
}

func (s *server) forkSandbox(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.snapshots(w, r)
	if !ok {
		return
	}
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req api.ForkSandboxRequest
	if err := s.decodeJSON(w, r, &req, false); err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := ss.ForkSandbox(r.Context(), name, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusCreated, out)
}
