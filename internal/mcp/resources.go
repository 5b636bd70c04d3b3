package mcp

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// A sandbox's files as MCP resources, sandbox://NAME/PATH, read through
// the session's access check like sandbox_file_read, and a prompt that
// tells a host agent how to use the tools.

// resourceTemplate is the URI template of a sandbox's files.
const resourceTemplate = "sandbox://{name}/{+path}"

func (st *state) addResources(s *mcp.Server) {
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: resourceTemplate, Name: "sandbox-file",
		Description: "A file of a sandbox: sandbox://NAME/absolute/path"}, st.readResource)
	s.AddPrompt(&mcp.Prompt{Name: "agentkernel", Description: "How to run code safely in agentkernel sandboxes"}, usePrompt)
}

// parseSandboxURI splits sandbox://NAME/PATH into the name and the
// absolute path.
func parseSandboxURI(uri string) (name, path string, err error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "sandbox" || u.Host == "" || u.Path == "" || u.Path == "/" {
		return "", "", fmt.Errorf("resource %q: want sandbox://NAME/absolute/path", uri)
	}
	return u.Host, u.Path, nil
}

func (st *state) readResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	name, path, err := parseSandboxURI(req.Params.URI)
	if err != nil {
		return nil, err
	}
	if err := st.access(ctx, st.session(req.Session), name); err != nil {
		return nil, err
	}
	b, err := st.c.ReadFile(ctx, name, path)
	if err != nil {
		return nil, mcp.ResourceNotFoundError(req.Params.URI)
	}
	if len(b) > st.policy.MaxOutputBytes {
		return nil, fmt.Errorf("resource %s is %d bytes, more than this server's limit of %d; read it in parts with sandbox_exec (head, tail)",
			req.Params.URI, len(b), st.policy.MaxOutputBytes)
	}
	c := &mcp.ResourceContents{URI: req.Params.URI}
	if utf8.Valid(b) {
		c.MIMEType, c.Text = "text/plain", string(b)
	} else {
		c.MIMEType, c.Blob = "application/octet-stream", b
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{c}}, nil
}

// promptText is what the agentkernel prompt tells a host agent.
var promptText = strings.TrimSpace(`
You can run code in isolated agentkernel sandboxes instead of on this machine. Use them for anything
untrusted or risky: running tests, installing packages, executing generated code, trying commands.

- sandbox_run: one command in a fresh sandbox that is removed afterwards. Give the command as an array
  (["python3", "-c", "print(1)"]) or one shell string ("pip install x && python -m x").
- sandbox_create, then sandbox_exec, sandbox_file_write, sandbox_file_read, sandbox_file_list: a sandbox
  that keeps its files between commands for this session; sandbox_remove when done.
- sandbox_exec_detach, sandbox_exec_status, sandbox_exec_logs, sandbox_exec_kill: long-running commands.
- sandbox_network_log: what a sandbox tried to reach and what its policy refused.

Files are also readable as resources: sandbox://NAME/absolute/path. Long output is cut in the middle with a
note; ask for the part you need. The security profile and images are set by the user; asking for more is
refused.`)

func usePrompt(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	return &mcp.GetPromptResult{Description: "Using agentkernel's sandbox tools",
		Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: promptText}}}}, nil
}
