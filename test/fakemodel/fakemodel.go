// Package fakemodel is a fake LLM API server that speaks enough of each
// vendor's streaming API for the real agent CLIs (Claude Code, Codex CLI,
// Gemini CLI, OpenCode) to run a whole task unattended, without any real
// model or network.
//
// It impersonates, on one http.Handler:
//
//   - the Anthropic Messages API (POST /v1/messages, streamed or not, and
//     /v1/messages/count_tokens), as Claude Code and OpenCode use it;
//   - the OpenAI Responses API (POST /v1/responses) as Codex CLI uses it, and
//     Chat Completions (POST /v1/chat/completions);
//   - the Gemini API (POST /v1beta/models/{model}:streamGenerateContent,
//     :generateContent, :countTokens) as Gemini CLI uses it;
//   - model listings (GET /v1/models, /v1beta/models) and health checks; a
//     GET of .../responses (Codex's Responses-over-WebSocket) gets a 404, so
//     Codex falls back to HTTP.
//
// # The script
//
// Every model request is answered from a Script, decided from the request
// itself (so the fake keeps no per-conversation state, and a retried
// request gets the same answer):
//
//  1. A request that offers tools and carries no tool result is the start of
//     the main conversation. It is answered with ONE tool call that makes the
//     agent write Script.FilePath with Script.FileContent. The tool is chosen
//     from the tools the request offers, by their names and parameter schemas:
//     a file-writing tool (Claude Code's Write, Gemini CLI's write_file,
//     OpenCode's write: a name with "write" or "create" and a path and a
//     content parameter), else a shell tool (Codex's exec_command or shell,
//     Bash, run_shell_command) running printf, else Codex's "code mode" exec
//     tool (JavaScript that calls tools.exec_command), else apply_patch. When
//     no such tool is offered the fake answers HTTP 500 and records the error
//     (see Server.Errors).
//  2. A request whose conversation carries a tool result is answered with
//     Script.FinalText and ends the turn.
//  3. A request that offers no tools is a side request (title generation,
//     routing classifiers, next-speaker or quota checks, summaries): it is
//     answered with Script.SideText, or, when it asks for JSON against a
//     schema (Gemini CLI's classifiers), with the smallest JSON value that
//     fits the schema. Side requests never touch the script.
//
// Tools like Claude Code's Write need an absolute path. The fake joins
// Script.FilePath to Script.Dir when that is set, else to the working
// directory the agent states in its prompt (every CLI names it there), else
// it passes FilePath as it is.
//
// # Recording
//
// Every request is recorded (Server.Requests) with its method, path, query,
// headers and body and the fake's decision, and the API keys it carried are
// collected by header (Server.KeyHeaders). The server also acts as an HTTP
// proxy that refuses everything: point HTTPS_PROXY and HTTP_PROXY at it (with
// NO_PROXY=127.0.0.1) and each attempt a CLI makes to reach another host is
// refused and listed by Server.Outbound.
package fakemodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Script is what the fake model does in a conversation.
type Script struct {
	// FilePath is the file the agent is made to write, relative to its
	// working directory (an absolute path is used as it is).
	FilePath string
	// FileContent is that file's content, written byte for byte.
	FileContent string
	// FinalText is the model's final message, once the tool result is back.
	FinalText string
	// SideText answers side requests; "OK" when empty.
	SideText string
	// Dir is the agent's working directory as the agent sees it. When empty
	// the fake takes it from the request's prompt.
	Dir string
	// Call, when set, replaces the file write: the first request is
	// answered with a call of this tool with these arguments.
	Call *ToolCall
}

// ToolCall names a tool and its arguments.
type ToolCall struct {
	Tool string
	Args map[string]any
}

// API names a vendor API the fake speaks.
type API string

// The APIs.
const (
	Anthropic       API = "anthropic"
	OpenAIResponses API = "openai-responses"
	OpenAIChat      API = "openai-chat"
	Gemini          API = "gemini"
)

// Kind is how the fake answered a request.
type Kind string

// The kinds of answer.
const (
	KindToolCall Kind = "tool-call" // the main conversation's first request
	KindFinal    Kind = "final"     // the request carrying the tool result, or later
	KindSide     Kind = "side"      // a request that offers no tools
	KindCount    Kind = "count"     // token counting
	KindOther    Kind = "other"     // model lists, health checks, unknown paths
	KindError    Kind = "error"     // the fake could not follow the script
	KindOutbound Kind = "outbound"  // a proxy request for another host, refused
)

// Recorded is one request the fake received, and what it did with it.
type Recorded struct {
	Time   time.Time
	Method string
	Path   string
	Query  string // raw query
	Host   string
	Header http.Header
	Body   []byte

	API    API    // the vendor API of the path, "" for others
	Model  string // the model the request named
	Stream bool   // whether the answer was streamed
	Kind   Kind
	Tool   string // the tool the fake called, for KindToolCall
	Status int
	Error  string // why the fake failed, for KindError
}

// KeyUse is an API key the fake saw, and where it came in.
type KeyUse struct {
	API API
	// Header is the lower-case header name ("x-api-key", "authorization",
	// "x-goog-api-key") or "?key" for the query parameter.
	Header string
	// Key is the key, without any "Bearer " prefix.
	Key string
}

// Server is the fake model server. It is safe for concurrent use.
type Server struct {
	script Script

	mu   sync.Mutex
	reqs []Recorded
	seq  int
}

// New returns a fake model server that follows script.
func New(script Script) *Server {
	if script.SideText == "" {
		script.SideText = "OK"
	}
	return &Server{script: script}
}

// Requests returns a copy of every request received so far, oldest first.
func (s *Server) Requests() []Recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Recorded(nil), s.reqs...)
}

// Errors returns the errors of the requests the fake could not answer from
// the script (KindError).
func (s *Server) Errors() []string {
	var errs []string
	for _, r := range s.Requests() {
		if r.Kind == KindError {
			errs = append(errs, fmt.Sprintf("%s %s: %s", r.Method, r.Path, r.Error))
		}
	}
	return errs
}

// Outbound returns the hosts that clients tried to reach through the fake
// as a proxy (each refused), in order, with repeats.
func (s *Server) Outbound() []string {
	var hosts []string
	for _, r := range s.Requests() {
		if r.Kind == KindOutbound {
			hosts = append(hosts, r.Host)
		}
	}
	return hosts
}

// Count returns how many requests were answered with kind k.
func (s *Server) Count(k Kind) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Kind == k {
			n++
		}
	}
	return n
}

// KeyHeaders returns each distinct API key the fake saw on a model API
// request, with the header (or query parameter) that carried it, in the
// order first seen.
func (s *Server) KeyHeaders() []KeyUse {
	var out []KeyUse
	seen := map[KeyUse]bool{}
	add := func(k KeyUse) {
		if k.Key != "" && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, r := range s.Requests() {
		if r.API == "" {
			continue
		}
		add(KeyUse{r.API, "x-api-key", r.Header.Get("X-Api-Key")})
		if a := r.Header.Get("Authorization"); a != "" {
			add(KeyUse{r.API, "authorization", strings.TrimPrefix(a, "Bearer ")})
		}
		add(KeyUse{r.API, "x-goog-api-key", r.Header.Get("X-Goog-Api-Key")})
		if q, err := url.ParseQuery(r.Query); err == nil {
			add(KeyUse{r.API, "?key", q.Get("key")})
		}
	}
	return out
}

// maxBody bounds a request body the fake reads.
const maxBody = 64 << 20

// ServeHTTP routes a request to the vendor API it belongs to.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	rec := &Recorded{
		Time:   time.Now(),
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.RawQuery,
		Host:   r.Host,
		Header: r.Header.Clone(),
		Body:   body,
		Kind:   KindOther,
	}
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer s.record(rec, rw)

	// A proxy request (CONNECT, or an absolute URI) for some other host. (A
	// client that proxies even its requests to the fake is served.)
	if r.Method == http.MethodConnect || (r.URL.IsAbs() && !isSelf(r)) {
		rec.Kind = KindOutbound
		if r.Method != http.MethodConnect {
			rec.Host = r.URL.Host
		}
		http.Error(rw, "fakemodel: outbound traffic refused", http.StatusForbidden)
		return
	}

	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/messages/count_tokens"):
		rec.API = Anthropic
		s.anthropicCountTokens(rw, rec)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/messages"):
		rec.API = Anthropic
		s.anthropicMessages(rw, rec)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/responses"):
		rec.API = OpenAIResponses
		s.openaiResponses(rw, rec)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/chat/completions"):
		rec.API = OpenAIChat
		s.openaiChat(rw, rec)
	case r.Method == http.MethodPost && strings.Contains(path, "/models/") && strings.Contains(path, ":"):
		rec.API = Gemini
		s.gemini(rw, r, rec)
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/responses"):
		// Codex's built-in OpenAI provider tries the Responses API over a
		// WebSocket first; the fake speaks only HTTP.
		rec.API = OpenAIResponses
		writeJSON(rw, http.StatusNotFound, map[string]any{
			"error": map[string]any{"type": "invalid_request_error", "message": "fakemodel: the Responses WebSocket is not supported; use HTTP"},
		})
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasSuffix(strings.TrimSuffix(path, "/"), "/models"):
		s.listModels(rw, r, rec)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		// Health checks and anything else read-only: an empty object.
		writeJSON(rw, http.StatusOK, map[string]any{})
	default:
		rec.Kind = KindOther
		writeJSON(rw, http.StatusNotFound, map[string]any{
			"error": map[string]any{"type": "not_found_error", "message": "fakemodel: no such endpoint: " + r.Method + " " + path},
		})
	}
}

// isSelf reports whether an absolute-URI request names the fake itself.
func isSelf(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if !ok {
		return false
	}
	host, port, err := net.SplitHostPort(r.URL.Host)
	if err != nil || port != strconv.Itoa(local.Port) {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && (ip.IsLoopback() || ip.Equal(local.IP))
}

func (s *Server) record(rec *Recorded, rw *statusWriter) {
	rec.Status = rw.status
	s.mu.Lock()
	s.reqs = append(s.reqs, *rec)
	s.mu.Unlock()
}

// nextID returns a fresh id with prefix.
func (s *Server) nextID(prefix string) string {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	return fmt.Sprintf("%s%06d", prefix, n)
}

// fail answers a request the fake cannot follow the script for.
func (s *Server) fail(w http.ResponseWriter, rec *Recorded, msg string) {
	rec.Kind = KindError
	rec.Error = msg
	writeJSON(w, http.StatusInternalServerError, map[string]any{
		"error": map[string]any{"type": "api_error", "code": 500, "status": "INTERNAL", "message": "fakemodel: " + msg},
	})
}

// badRequest answers a request body the fake cannot parse.
func (s *Server) badRequest(w http.ResponseWriter, rec *Recorded, err error) {
	rec.Kind = KindError
	rec.Error = "bad request body: " + err.Error()
	writeJSON(w, http.StatusBadRequest, map[string]any{
		"error": map[string]any{"type": "invalid_request_error", "code": 400, "status": "INVALID_ARGUMENT", "message": "fakemodel: " + rec.Error},
	})
}

// listModels answers GET .../models in the shape of the API it looks like.
func (s *Server) listModels(w http.ResponseWriter, r *http.Request, rec *Recorded) {
	switch {
	case strings.Contains(r.URL.Path, "/v1beta/") || r.Header.Get("X-Goog-Api-Key") != "":
		rec.API = Gemini
		writeJSON(w, http.StatusOK, map[string]any{"models": []any{map[string]any{
			"name": "models/gemini-fake", "displayName": "fake", "supportedGenerationMethods": []string{"generateContent", "streamGenerateContent", "countTokens"},
			"inputTokenLimit": 1000000, "outputTokenLimit": 65536,
		}}})
	case r.Header.Get("Anthropic-Version") != "" || r.Header.Get("X-Api-Key") != "":
		rec.API = Anthropic
		writeJSON(w, http.StatusOK, map[string]any{
			"data":     []any{map[string]any{"type": "model", "id": "claude-fake", "display_name": "fake", "created_at": "2025-01-01T00:00:00Z"}},
			"has_more": false, "first_id": "claude-fake", "last_id": "claude-fake",
		})
	default:
		rec.API = OpenAIResponses
		writeJSON(w, http.StatusOK, map[string]any{
			"object": "list",
			"data":   []any{map[string]any{"id": "gpt-fake", "object": "model", "created": 1735689600, "owned_by": "fakemodel"}},
		})
	}
}

// statusWriter remembers the status written and passes Flush through.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// sse writes server-sent events.
type sse struct{ w http.ResponseWriter }

func newSSE(w http.ResponseWriter) sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return sse{w}
}

// event writes one event; name may be empty for data-only events.
func (e sse) event(name string, data any) {
	var buf bytes.Buffer
	if name != "" {
		fmt.Fprintf(&buf, "event: %s\n", name)
	}
	switch d := data.(type) {
	case string:
		fmt.Fprintf(&buf, "data: %s\n\n", d)
	default:
		b, _ := json.Marshal(d)
		fmt.Fprintf(&buf, "data: %s\n\n", b)
	}
	e.w.Write(buf.Bytes())
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
}

// chunks splits s into a few pieces, so that streams carry several deltas.
func chunks(s string) []string {
	const n = 24
	var out []string
	for len(s) > n {
		i := n
		for i < len(s) && !isRuneStart(s[i]) {
			i++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	if s != "" || len(out) == 0 {
		out = append(out, s)
	}
	return out
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
