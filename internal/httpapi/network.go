package httpapi

import (
	"context"
	"net/http"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Network and secrets routes. Both are optional parts of a Service (the
// daemon's implements them); without them the routes answer 501.
//
// Secrets are served on the Unix socket only (a handler without a token):
// over TCP every /secrets route answers 403, so a leaked API token can
// bind secrets to sandboxes by name but never read or change them.

// NetworkService is implemented by a Service whose sandboxes have network
// gateways.
type NetworkService interface {
	// SandboxNetwork describes a sandbox's network and policy.
	SandboxNetwork(ctx context.Context, name string) (api.NetworkInfo, error)
	// SetSandboxNetwork replaces a sandbox's egress policy, live.
	SetSandboxNetwork(ctx context.Context, name string, p api.NetworkPolicy) (api.NetworkInfo, error)
	// NetworkLog returns the last limit events of a sandbox's network
	// audit log (0: the default number), oldest first.
	NetworkLog(ctx context.Context, name string, limit int) ([]api.NetworkEvent, error)
}

// SecretService is implemented by a Service with a vault of secrets.
type SecretService interface {
	ListSecrets(ctx context.Context) ([]api.SecretInfo, error)
	GetSecret(ctx context.Context, name string) (api.SecretValue, error)
	SetSecret(ctx context.Context, name, value string) (api.SecretInfo, error)
	DeleteSecret(ctx context.Context, name string) error
}

// maxNetworkLogLimit bounds ?limit= of the network log.
const maxNetworkLogLimit = 10000

func (s *server) networkService(w http.ResponseWriter, r *http.Request) (NetworkService, string, bool) {
	ns, ok := s.svc.(NetworkService)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server has no network gateways"})
		return nil, "", false
	}
	name, err := pathName(r)
	if err != nil {
		s.writeError(w, r, err)
		return nil, "", false
	}
	return ns, name, true
}

func (s *server) getNetwork(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := s.networkService(w, r)
	if !ok {
		return
	}
	info, err := ns.SandboxNetwork(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, info)
}

func (s *server) putNetwork(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := s.networkService(w, r)
	if !ok {
		return
	}
	var p api.NetworkPolicy
	if err := s.decodeJSON(w, r, &p, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := ns.SetSandboxNetwork(r.Context(), name, p)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, info)
}

func (s *server) networkLog(w http.ResponseWriter, r *http.Request) {
	ns, name, ok := s.networkService(w, r)
	if !ok {
		return
	}
	limit, err := queryLimit(r, maxNetworkLogLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	events, err := ns.NetworkLog(r.Context(), name, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if events == nil {
		events = []api.NetworkEvent{}
	}
	writeData(w, http.StatusOK, events)
}

// secretService returns the vault, refusing requests that did not come
// over the Unix socket.
func (s *server) secretService(w http.ResponseWriter, r *http.Request) (SecretService, bool) {
	if s.opts.Token != "" {
		s.writeError(w, r, &classError{class: errdefs.ErrPermissionDenied,
			msg: "secrets are managed only over the daemon's Unix socket (agentkernel secret …), not over TCP"})
		return nil, false
	}
	ss, ok := s.svc.(SecretService)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server has no secret vault"})
		return nil, false
	}
	return ss, true
}

func (s *server) listSecrets(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.secretService(w, r)
	if !ok {
		return
	}
	list, err := ss.ListSecrets(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if list == nil {
		list = []api.SecretInfo{}
	}
	writeData(w, http.StatusOK, list)
}

func (s *server) getSecret(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.secretService(w, r)
	if !ok {
		return
	}
	v, err := ss.GetSecret(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeData(w, http.StatusOK, v)
}

func (s *server) putSecret(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.secretService(w, r)
	if !ok {
		return
	}
	var req api.SetSecretRequest
	if err := s.decodeJSON(w, r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	info, err := ss.SetSecret(r.Context(), r.PathValue("name"), req.Value)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, info)
}

func (s *server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	ss, ok := s.secretService(w, r)
	if !ok {
		return
	}
	if err := ss.DeleteSecret(r.Context(), r.PathValue("name")); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, "Secret deleted")
}
