// Package mcp is agentkernel's Model Context Protocol server, built on the
// official Go SDK (github.com/modelcontextprotocol/go-sdk/mcp).
//
// It is a thin client of the daemon: every tool calls the daemon's API
// through the Client interface (a *client.Client satisfies it). The tools
// keep upstream agentkernel's names and arguments: sandbox_run,
// sandbox_create, sandbox_exec, sandbox_list, sandbox_remove,
// sandbox_file_read and sandbox_file_write.
//
// The user's Policy, fixed when the server starts, bounds what a tool may
// ask for: a tool argument can only narrow the profile, images must be in
// the allowed list, a session holds at most MaxSandboxes sandboxes, and
// output beyond MaxOutputBytes is cut in the middle. Sandboxes a session
// creates carry the label agentkernel.mcp.session=<id> and are removed
// when the session ends, unless sandbox_create was given keep=true.
package mcp
