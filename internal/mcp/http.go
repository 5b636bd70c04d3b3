package mcp

import (
	"net/http"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// HTTPHandler serves the tools over MCP's Streamable HTTP transport, as the
// daemon's /mcp route: one MCP server, a session per client (its sandboxes
// removed when the session ends, see New). The caller authenticates (the
// daemon's API token); this handler adds what the MCP specification asks
// of HTTP servers against DNS rebinding and cross-site requests: the SDK's
// localhost protection (a request reaching a loopback address with another
// Host is refused) and net/http's cross-origin protection (a request whose
// Origin is not the server's own is refused with 403).
func HTTPHandler(c Client, policy Policy) http.Handler {
	s := New(c, policy)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	return http.NewCrossOriginProtection().Handler(h)
}
