package httpapi

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/internal/telemetry"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// tracer makes each route's server span (see telemetry.HTTPSpan).
var tracer = telemetry.Tracer("httpapi")

// Defaults for HandlerOptions' zero values.
const (
	DefaultMaxBodyBytes     = 16 << 20
	DefaultMaxArchiveBytes  = 1 << 30
	DefaultMaxExecOutput    = 16 << 20
	DefaultBatchConcurrency = 4
	DefaultMaxBatchCommands = 64
	DefaultCleanupTimeout   = 30 * time.Second
)

// HandlerOptions configures NewHandler. Zero values take the documented
// defaults. The options are copied; changing them later has no effect.
type HandlerOptions struct {
	// Token, when not empty, is required on every route except GET /health,
	// as "Authorization: Bearer <token>" or upstream's "X-API-Key: <token>".
	// Empty means no authentication (the Unix socket, protected by its mode).
	Token string
	// AllowedHosts, when set, are the only Host headers served
	// ("127.0.0.1:18888", "localhost:18888"; compared without case): a
	// guard against DNS rebinding, where a web page's own name resolves
	// to the loopback address and the browser sends that name as Host.
	AllowedHosts []string
	// MoreTokens are further tokens accepted as Token is (serve's
	// repeated --api-key); they count only with a Token.
	MoreTokens []string
	// MetricsPublic serves GET /metrics without the token (serve
	// --metrics-public), for scrapers that cannot send one.
	MetricsPublic bool
	// HostPaths are the host directories that requests over a handler with
	// a token may name (mounts, image imports, build contexts), each
	// absolute, clean and with its symlinks resolved; everything else is
	// refused with 403 (see hostpath.go). Without a token any path may be
	// named.
	HostPaths []string
	// Logger receives one debug line per request (method, path, status,
	// duration; never bodies or headers) and errors. Nil discards.
	Logger *slog.Logger
	// MaxBodyBytes bounds JSON request bodies, raw file uploads and file
	// reads. Default 16 MiB.
	MaxBodyBytes int64
	// MaxArchiveBytes bounds tar uploads (PUT …/archive). Default 1 GiB.
	MaxArchiveBytes int64
	// MaxExecOutput bounds the output a buffered exec or run collects
	// (stdout plus stderr); past it the process is killed and the request
	// fails with 413. Default 16 MiB.
	MaxExecOutput int64
	// BatchConcurrency is how many commands of one /batch/run run at once.
	// Default 4.
	BatchConcurrency int
	// MaxBatchCommands bounds the commands of one /batch/run. Default 64.
	MaxBatchCommands int
	// CleanupTimeout bounds the removal of a run's ephemeral sandbox, which
	// happens even when the client has gone away. Default 30s.
	CleanupTimeout time.Duration
	// OpenCode serves the /opencode routes; nil answers them 501. The
	// daemon gives both its handlers the same one.
	OpenCode OpenCodeProxy
	// MCP serves /mcp (internal/mcp.HTTPHandler); nil answers it 501.
	MCP http.Handler
}

func (o *HandlerOptions) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxArchiveBytes <= 0 {
		o.MaxArchiveBytes = DefaultMaxArchiveBytes
	}
	if o.MaxExecOutput <= 0 {
		o.MaxExecOutput = DefaultMaxExecOutput
	}
	if o.BatchConcurrency <= 0 {
		o.BatchConcurrency = DefaultBatchConcurrency
	}
	if o.MaxBatchCommands <= 0 {
		o.MaxBatchCommands = DefaultMaxBatchCommands
	}
	if o.CleanupTimeout <= 0 {
		o.CleanupTimeout = DefaultCleanupTimeout
	}
}

// server is the http.Handler NewHandler returns. It is immutable after
// NewHandler and safe for concurrent use; it owns no goroutines beyond those
// of requests in flight.
type server struct {
	svc  Service
	opts HandlerOptions
	log  *slog.Logger
	// tokenSums are the SHA-256 of Token and MoreTokens, each compared in
	// constant time, all of them on every request.
	tokenSums [][32]byte
	// first holds the routes that must win over an overlapping pattern
	// of mux (GET /sandboxes/by-uuid/{uuid} against
	// GET /sandboxes/{name}/logs and the like); mux holds the rest.
	first, mux *http.ServeMux
	// basicAuth holds the patterns of the routes with basicAuth.
	basicAuth map[string]bool
	openapi   []byte
}

// NewHandler returns the API handler serving svc.
func NewHandler(svc Service, opts HandlerOptions) http.Handler {
	opts.setDefaults()
	s := &server{
		svc:       svc,
		opts:      opts,
		log:       opts.Logger,
		tokenSums: tokenSums(opts),
		first:     http.NewServeMux(),
		mux:       http.NewServeMux(),
		basicAuth: map[string]bool{},
	}
	for _, rt := range routes {
		if rt.basicAuth {
			s.basicAuth[rt.muxPattern()] = true
		}
		m := s.mux
		if rt.first {
			m = s.first
		}
		name := rt.muxPattern()
		m.HandleFunc(rt.muxPattern(), func(w http.ResponseWriter, r *http.Request) {
			telemetry.HTTPSpan(tracer, name, w, r, func(w http.ResponseWriter, r *http.Request) { rt.handle(s, w, r) })
		})
	}
	s.mux.HandleFunc("/", s.fallback)
	s.openapi = openAPIDocument()
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	defer func() {
		v := recover()
		if v != nil && v != http.ErrAbortHandler {
			s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if !rec.wroteHeader {
				writeJSON(rec, http.StatusInternalServerError, errorEnvelope("internal error", "internal"))
			} else {
				v = http.ErrAbortHandler // break the half-sent response
			}
		}
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
		if v == http.ErrAbortHandler {
			panic(v) // net/http aborts the response quietly
		}
	}()
	r, err := checkRequestPath(r)
	if err != nil {
		s.writeError(rec, r, err)
		return
	}
	if !s.hostAllowed(r.Host) {
		s.writeError(rec, r, &classError{class: errdefs.ErrPermissionDenied,
			msg: fmt.Sprintf("Host %q is not this server's (a guard against DNS rebinding); use %s", boundArgs([]any{r.Host})[0], s.opts.AllowedHosts[0])})
		return
	}
	if !s.authorized(r) {
		msg := "missing or invalid API token: send Authorization: Bearer <token> or X-API-Key: <token>"
		if s.takesBasicAuth(r) {
			msg += ", or the token as the basic-auth password (opencode attach --password <token>)"
		}
		s.writeError(rec, r, &classError{class: errdefs.ErrUnauthenticated, msg: msg})
		return
	}
	if _, pattern := s.first.Handler(r); pattern != "" {
		s.first.ServeHTTP(rec, r)
		return
	}
	s.mux.ServeHTTP(rec, r)
}

// authorized reports whether r may proceed: always without a token, else
// only GET /health or a request carrying the token. On the basicAuth
// routes (/opencode) the token may also be the basic-auth password, which
// is what `opencode attach --password` sends ("Basic opencode:<password>";
// the user name, OPENCODE_SERVER_USERNAME's, does not matter).
func (s *server) authorized(r *http.Request) bool {
	if s.opts.Token == "" {
		return true
	}
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.URL.Path == "/health" || r.URL.Path == "/metrics" && s.opts.MetricsPublic) {
		return true
	}
	got := ""
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, tok, ok := strings.Cut(auth, " ")
		switch {
		case ok && strings.EqualFold(scheme, "Bearer"):
			got = strings.TrimSpace(tok)
		case ok && strings.EqualFold(scheme, "Basic") && s.takesBasicAuth(r):
			if _, got, ok = r.BasicAuth(); !ok {
				return false
			}
		default:
			return false
		}
	} else {
		got = r.Header.Get("X-API-Key")
	}
	if got == "" {
		return false
	}
	sum := sha256.Sum256([]byte(got))
	ok := 0
	for _, t := range s.tokenSums {
		ok |= subtle.ConstantTimeCompare(sum[:], t[:])
	}
	return ok == 1
}

func tokenSums(opts HandlerOptions) [][32]byte {
	sums := [][32]byte{sha256.Sum256([]byte(opts.Token))}
	for _, t := range opts.MoreTokens {
		if t != "" {
			sums = append(sums, sha256.Sum256([]byte(t)))
		}
	}
	return sums
}

// hostAllowed reports whether host may be served (see AllowedHosts).
func (s *server) hostAllowed(host string) bool {
	if len(s.opts.AllowedHosts) == 0 {
		return true
	}
	for _, h := range s.opts.AllowedHosts {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

// takesBasicAuth reports whether r goes to a route with basicAuth.
func (s *server) takesBasicAuth(r *http.Request) bool {
	if _, pat := s.first.Handler(r); pat != "" {
		return s.basicAuth[pat]
	}
	_, pat := s.mux.Handler(r)
	return s.basicAuth[pat]
}

// checkRequestPath refuses request paths with NUL bytes, "." or ".."
// segments or empty segments (before the mux would quietly clean them
// with a redirect). Under /sandboxes/{name}/files/ it first collapses the
// slashes that start the file path, which upstream's clients produce for
// "/tmp/x"; it returns a request with the rewritten URL.
func checkRequestPath(r *http.Request) (*http.Request, error) {
	p := r.URL.Path
	if strings.IndexByte(p, 0) >= 0 {
		return r, invalidf("invalid request path %q: contains a NUL byte", p)
	}
	if segs := strings.SplitN(r.URL.EscapedPath(), "/", 5); len(segs) == 5 && segs[0] == "" &&
		segs[1] == "sandboxes" && segs[3] == "files" && strings.HasPrefix(segs[4], "/") {
		escaped := strings.Join(segs[:4], "/") + "/" + strings.TrimLeft(segs[4], "/")
		u, err := url.Parse(escaped)
		if err != nil {
			return r, invalidf("invalid request path %q", p)
		}
		r2 := new(http.Request)
		*r2 = *r
		u2 := *r.URL
		u2.Path, u2.RawPath = u.Path, u.RawPath
		r2.URL = &u2
		r, p = r2, u.Path
	}
	segs := strings.Split(p, "/")
	if segs[0] != "" {
		return r, invalidf("invalid request path %q: must start with /", p)
	}
	for i, seg := range segs[1:] {
		if seg == "." || seg == ".." || (seg == "" && i != len(segs)-2) {
			return r, invalidf("invalid request path %q: '.', '..' and empty segments are not allowed", p)
		}
	}
	return r, nil
}

// fallback answers requests no route matched: 405 with Allow when the path
// exists for other methods, else 404.
func (s *server) fallback(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		r2 := new(http.Request)
		*r2 = *r
		r2.Method = m
		_, p1 := s.first.Handler(r2)
		_, p2 := s.mux.Handler(r2)
		if p1 != "" || (p2 != "" && p2 != "/") {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, errorEnvelope("method "+r.Method+" is not allowed on "+r.URL.Path, "invalid_argument"))
		return
	}
	s.writeError(w, r, &classError{class: errdefs.ErrNotFound, msg: "no route for " + r.Method + " " + r.URL.Path})
}

// recorder notes the status for the request log and whether a header has
// been written (so a panic after the header is not answered twice). It
// passes Flush and Hijack through for SSE and WebSocket.
type recorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

// Status is the status written so far (0 before the header).
func (r *recorder) Status() int { return r.status }

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := r.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the connection cannot be hijacked")
	}
	return h.Hijack()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
