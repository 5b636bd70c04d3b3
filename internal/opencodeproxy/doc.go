// Package opencodeproxy serves upstream agentkernel's /opencode route:
// `opencode attach http://localhost:18888/opencode` reaches an
// `opencode serve` in a sandbox of its own, opencode-attach.
//
// The proxy provisions that sandbox on the first request (once, however
// many requests arrive together), checks on every request that it is still
// the same running sandbox, provisions a new one when it has died or been
// removed, and removes it on DELETE /opencode (Teardown). While a
// provisioning is in progress a request waits for it a bounded time
// (Options.StartWait), then gets 503 with Retry-After.
//
// Requests pass through unchanged and stream both ways (SSE, chunked
// bodies, protocol upgrades): method, path (below the /opencode prefix,
// which the HTTP API strips), query, headers and body. The exceptions are
// the hop-by-hop headers; the client's Authorization and X-API-Key, which
// carry the daemon's API token and are replaced by the sandbox server's
// own password; and the CORS headers of answers, which are dropped (the
// API blesses no origin).
//
// The sandbox's server listens on a port published on the host's
// loopback, where every local user can connect, so it is started with a
// password (OPENCODE_SERVER_PASSWORD) that only the daemon knows: an HMAC
// of the sandbox's UUID under Options.Secret, so that a restarted daemon
// re-adopts a running sandbox, and its OpenCode sessions, instead of
// replacing it.
//
// The proxy reaches sandboxes through the small Sandboxes interface,
// which internal/sandbox's Manager implements; tests use a fake.
package opencodeproxy
