package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func (s *server) health(w http.ResponseWriter, _ *http.Request) {
	writeData(w, http.StatusOK, "ok")
}

// pathName returns the validated {name} of r.
func pathName(r *http.Request) (string, error) {
	name := r.PathValue("name")
	return name, checkName(name)
}

func (s *server) listSandboxes(w http.ResponseWriter, r *http.Request) {
	want, err := parseLabelFilter(r.URL.Query()["label"])
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list, err := s.svc.ListSandboxes(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := []api.SandboxInfo{}
	for _, sb := range list {
		if want.matches(sb.Labels) {
			out = append(out, sb)
		}
	}
	writeData(w, http.StatusOK, out)
}

// labelFilter is GET /sandboxes?label=KEY=VALUE&label=KEY (upstream's):
// a sandbox is listed when it has every KEY, with VALUE where one is given.
type labelFilter map[string]*string

func parseLabelFilter(qs []string) (labelFilter, error) {
	f := labelFilter{}
	for _, q := range qs {
		k, v, hasValue := strings.Cut(q, "=")
		if k == "" {
			return nil, invalidf("label filter %q: want KEY or KEY=VALUE", q)
		}
		if hasValue {
			f[k] = &v
		} else {
			f[k] = nil
		}
	}
	return f, nil
}

func (f labelFilter) matches(labels map[string]string) bool {
	for k, v := range f {
		got, ok := labels[k]
		if !ok || (v != nil && got != *v) {
			return false
		}
	}
	return true
}

func (s *server) createSandbox(w http.ResponseWriter, r *http.Request) {
	var req api.CreateSandboxRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkName(req.Name); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.TTL != "" {
		if _, err := api.ParseDuration(req.TTL); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if req.VCPUs < 0 || req.MemoryMB < 0 || req.DiskMB < 0 {
		s.writeError(w, r, invalidf("vcpus, memory_mb and disk_mb must not be negative"))
		return
	}
	if req.Image != "" {
		if err := checkImageName(req.Image); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	dirs, err := s.checkDirMounts(req.Dirs)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req.Dirs = dirs
	info, err := s.svc.CreateSandbox(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusCreated, info)
}

func (s *server) getSandbox(w http.ResponseWriter, r *http.Request) {
	s.sandboxOp(w, r, s.svc.GetSandbox)
}

func (s *server) startSandbox(w http.ResponseWriter, r *http.Request) {
	s.sandboxOp(w, r, s.svc.StartSandbox)
}

func (s *server) stopSandbox(w http.ResponseWriter, r *http.Request) {
	s.sandboxOp(w, r, s.svc.StopSandbox)
}

func (s *server) pauseSandbox(w http.ResponseWriter, r *http.Request) {
	s.sandboxOp(w, r, s.svc.PauseSandbox)
}

func (s *server) resumeSandbox(w http.ResponseWriter, r *http.Request) {
	s.sandboxOp(w, r, s.svc.ResumeSandbox)
}

// sandboxOp serves a route that takes {name} and answers a SandboxInfo.
func (s *server) sandboxOp(w http.ResponseWriter, r *http.Request, op func(ctx context.Context, name string) (api.SandboxInfo, error)) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := op(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, info)
}

func (s *server) getSandboxByUUID(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("uuid")
	if err := checkUUID(id); err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.svc.GetSandboxByUUID(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, info)
}

func (s *server) removeSandbox(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.svc.RemoveSandbox(r.Context(), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, "Sandbox removed")
}

func (s *server) extendSandbox(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req api.ExtendRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	by, err := api.ParseDuration(req.By)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := s.svc.ExtendSandbox(r.Context(), name, by)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, api.ExtendResponse{ExpiresAt: info.ExpiresAt})
}

func (s *server) sandboxLogs(w http.ResponseWriter, r *http.Request) {
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	events, err := s.svc.SandboxLogs(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if events == nil {
		events = []api.LogEvent{}
	}
	writeData(w, http.StatusOK, events)
}

func (s *server) listImages(w http.ResponseWriter, r *http.Request) {
	list, err := s.svc.ListImages(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []api.ImageInfo{}
	}
	writeData(w, http.StatusOK, list)
}

func (s *server) importImage(w http.ResponseWriter, r *http.Request) {
	var req api.ImportImageRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkImageName(req.Name); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.checkHostPath("import path", req.Path)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	req.Path = p
	info, err := s.svc.ImportImage(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusCreated, info)
}

func (s *server) removeImage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := checkImageName(name); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.svc.RemoveImage(r.Context(), name); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, "Image removed")
}

func (s *server) backends(w http.ResponseWriter, r *http.Request) {
	writeData(w, http.StatusOK, s.svc.Backends(r.Context()))
}

func (s *server) doctor(w http.ResponseWriter, r *http.Request) {
	checks := s.svc.Doctor(r.Context())
	if checks == nil {
		checks = []api.DoctorCheck{}
	}
	writeData(w, http.StatusOK, checks)
}
