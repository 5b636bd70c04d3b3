// Package plugin installs agentkernel's MCP server into the configuration
// of coding agents (Claude Code, Codex, Gemini CLI, OpenCode) so that the
// agent starts `agentkernel mcp-server` as a server named "agentkernel".
//
// The edits are pure functions of a file's contents and the binary's path
// (json.go, toml.go, skill.go): existing configuration is merged, never
// clobbered, an identical entry is left alone byte for byte, and a
// differing one is replaced only when forced. Plan (target.go) turns a
// target and scope into a list of Changes using a read function; Apply
// (fs.go) is the only code that writes, atomically.
package plugin
