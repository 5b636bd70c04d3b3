package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// maxAuditLimit bounds ?limit= of GET /audit.
const maxAuditLimit = 10000

// AuditService is implemented by a Service that keeps audit logs: the
// global one (sandbox "") and one per sandbox.
type AuditService interface {
	// AuditLog returns the last limit records (0: the default number) at
	// or after since, oldest first.
	AuditLog(ctx context.Context, sandbox string, since time.Time, limit int) (api.AuditLog, error)
	// VerifyAudit checks a log's hash chain; a broken log is a result,
	// not an error.
	VerifyAudit(ctx context.Context, sandbox string) (api.AuditVerification, error)
}

// auditService returns the Service's AuditService and the ?sandbox= it
// names ("" for the global log).
func (s *server) auditService(w http.ResponseWriter, r *http.Request) (AuditService, string, bool) {
	as, ok := s.svc.(AuditService)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server keeps no audit log"})
		return nil, "", false
	}
	name := r.URL.Query().Get("sandbox")
	if name != "" {
		if err := checkName(name); err != nil {
			s.writeError(w, r, err)
			return nil, "", false
		}
	}
	return as, name, true
}

func (s *server) auditLog(w http.ResponseWriter, r *http.Request) {
	as, name, ok := s.auditService(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	limit, err := queryLimit(r, maxAuditLimit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			s.writeError(w, r, invalidf("since %q: want an RFC 3339 time", v))
			return
		}
		since = t
	}
	out, err := as.AuditLog(r.Context(), name, since, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, out)
}

// queryLimit is ?limit=, 1 to max, or 0 when absent.
func queryLimit(r *http.Request, max int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, invalidf("limit %q: want 1 to %d", v, max)
	}
	return n, nil
}

func (s *server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	as, name, ok := s.auditService(w, r)
	if !ok {
		return
	}
	out, err := as.VerifyAudit(r.Context(), name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeData(w, http.StatusOK, out)
}
