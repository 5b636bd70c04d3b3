package httpapi

import (
	"net/http"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// MetricsSource is implemented by a Service that keeps Prometheus metrics
// (GET /metrics); without it that route answers 501.
type MetricsSource interface {
	MetricsHandler() http.Handler
}

// metrics serves GET /metrics in the Prometheus text format. Over TCP it
// needs the token like every route, unless HandlerOptions.MetricsPublic.
func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	m, ok := s.svc.(MetricsSource)
	if !ok {
		s.writeError(w, r, &classError{class: errdefs.ErrNotImplemented, msg: "this server keeps no metrics"})
		return
	}
	m.MetricsHandler().ServeHTTP(w, r)
}

// OnlyMetrics serves GET /metrics of h and nothing else: serve
// --metrics-addr's listener, for scrapers.
func OnlyMetrics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
