// Package httpapi serves agentkernel's HTTP API: the JSON envelope routes that
// upstream agentkernel's published clients use, Server-Sent Events for
// /run/stream, WebSocket streaming exec and attach, tar archives, and an
// OpenAPI 3.1 document generated from the same route table that registers
// the handlers, so the two cannot drift.
//
// The handlers depend only on the Service interface (service.go); the daemon
// implements it in internal/sandbox. NewHandler returns an http.Handler that
// the daemon mounts on its Unix socket (no token: the socket's 0600 mode is
// the protection) and on TCP 127.0.0.1:18888 (with a bearer token).
//
// Request handling, in order: the path is checked (no "." or ".."
// segments, no NUL, no empty segments), the token is checked (every route
// but GET /health), the route is dispatched by net/http's method+pattern
// mux, request bodies are decoded strictly (unknown fields and trailing
// data are errors, sizes are bounded), and every error is mapped to an HTTP
// status and envelope by one function, writeError, from its pkg/errdefs
// class. Panics in handlers become 500 responses and are logged. No CORS
// header is ever sent, and WebSocket upgrades refuse cross-origin browsers.
//
// Sandbox names match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$. Upstream's
// OpenAPI allows upper case (^[a-zA-Z0-9][a-zA-Z0-9_-]*$), and its clients
// must keep working, so upper case is accepted here; the dot is ours. The
// name "by-uuid" is reserved: /sandboxes/by-uuid/{uuid} looks sandboxes up
// by UUID.
package httpapi
