package httpapi

import (
	"context"
	"net/http"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// VolumeService is implemented by a Service that keeps named volumes;
// without it the /volumes routes answer 501.
type VolumeService interface {
	CreateVolume(ctx context.Context, req api.CreateVolumeRequest) (api.VolumeInfo, error)
	ListVolumes(ctx context.Context) ([]api.VolumeInfo, error)
	GetVolume(ctx context.Context, name string) (api.VolumeInfo, error)
	DeleteVolume(ctx context.Context, name string, force bool) (api.DeleteVolumeResponse, error)
}

func (s *server) volumes(w http.ResponseWriter, r *http.Request) (VolumeService, bool) {
	vs, ok := s.svc.(VolumeService)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server keeps no named volumes"})
	}
	return vs, ok
}

// volumeName is the {name} of a /volumes/{name} route, checked.
func volumeName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	return name, api.ValidateVolumeName(name)
}

func (s *server) listVolumes(w http.ResponseWriter, r *http.Request) {
	vs, ok := s.volumes(w, r)
	if !ok {
		return
	}
	out, err := vs.ListVolumes(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, out)
}

func (s *server) createVolume(w http.ResponseWriter, r *http.Request) {
	vs, ok := s.volumes(w, r)
	if !ok {
		return
	}
	var req api.CreateVolumeRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := api.ValidateVolumeName(req.Name); err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := vs.CreateVolume(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusCreated, info)
}

func (s *server) getVolume(w http.ResponseWriter, r *http.Request) {
	vs, ok := s.volumes(w, r)
	if !ok {
		return
	}
	name, err := volumeName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := vs.GetVolume(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, info)
}

func (s *server) deleteVolume(w http.ResponseWriter, r *http.Request) {
	vs, ok := s.volumes(w, r)
	if !ok {
		return
	}
	name, err := volumeName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	force, err := queryBool(r, "force")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out, err := vs.DeleteVolume(r.Context(), name, force)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, out)
}
