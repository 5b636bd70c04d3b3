package cli

import (
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/agentkernel/agentkernel/internal/daemonconf"
	akmcp "github.com/agentkernel/agentkernel/internal/mcp"
	"github.com/agentkernel/agentkernel/internal/paths"
)

func newMCPServerCmd(app *App) *cobra.Command {
	var flags akmcp.Policy
	cmd := &cobra.Command{
		Use:   "mcp-server",
		Short: "Serve the Model Context Protocol on stdin/stdout",
		Long: `mcp-server speaks MCP over stdin and stdout, for an AI agent to run commands
in sandboxes (docs/MCP.md lists the tools). It is a client of the daemon,
which it starts if none is running.

The flags are the user's policy: a tool may narrow it, never widen it. Their
defaults come from [mcp] in $AGENTKERNEL_HOME/daemon.toml, when it has one.
Sandboxes the session creates are removed when it ends, unless
sandbox_create was given keep=true.`,
		Example: `  agentkernel mcp-server --profile restrictive --image python:3.12
  agentkernel mcp-server --allow-domain pypi.org --allow-domain '*.pythonhosted.org'
  agentkernel mcp-server --allow-dir ~/scratch   # for sandbox_upload_dir / sandbox_download_dir`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			policy, err := mcpPolicy(cmd, flags)
			if err != nil {
				return withCode(exitFailure, err)
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			// A tool call's _meta traceparent goes on to the daemon in
			// the client's requests (pkg/client injects through it).
			otel.SetTextMapPropagator(propagation.TraceContext{})
			return akmcp.Serve(cmd.Context(), c, policy, &mcp.StdioTransport{})
		},
	}
	f := cmd.Flags()
	f.StringVar(&flags.Profile, "profile", "moderate", "the most permissive security profile a tool may ask for: restrictive, moderate or permissive")
	f.StringArrayVar(&flags.AllowedImages, "image", nil, "an image tools may use (repeatable; default: any; the first is the default image)")
	f.IntVar(&flags.MaxSandboxes, "max-sandboxes", 10, "the most sandboxes the session may hold at once (0: no limit)")
	f.IntVar(&flags.MaxOutputBytes, "max-output", akmcp.DefaultMaxOutputBytes, "bytes of each output stream or file kept; beyond, it is cut in the middle")
	f.StringArrayVar(&flags.AllowedDomains, "allow-domain", nil, "a domain sandboxes may reach, example.com or *.example.com (repeatable); when given, the whole egress allow-list")
	f.StringArrayVar(&flags.HostDirs, "allow-dir", nil, "a host directory sandbox_upload_dir and sandbox_download_dir may use (repeatable; default: none)")
	return cmd
}

// mcpPolicy is daemon.toml's [mcp] with the flags given on the command
// line over it, checked.
func mcpPolicy(cmd *cobra.Command, flags akmcp.Policy) (akmcp.Policy, error) {
	l, err := paths.Default()
	if err != nil {
		return akmcp.Policy{}, err
	}
	conf, err := daemonconf.Load(l.Home)
	if err != nil {
		return akmcp.Policy{}, err
	}
	p := akmcp.Policy{Profile: flags.Profile, MaxSandboxes: flags.MaxSandboxes, MaxOutputBytes: flags.MaxOutputBytes}.WithConfig(conf.MCP)
	f := cmd.Flags()
	set := func(name string, apply func()) {
		if f.Changed(name) {
			apply()
		}
	}
	set("profile", func() { p.Profile = flags.Profile })
	set("image", func() { p.AllowedImages = flags.AllowedImages })
	set("max-sandboxes", func() { p.MaxSandboxes = flags.MaxSandboxes })
	set("max-output", func() { p.MaxOutputBytes = flags.MaxOutputBytes })
	set("allow-domain", func() { p.AllowedDomains = flags.AllowedDomains })
	set("allow-dir", func() { p.HostDirs = flags.HostDirs })
	if err := p.Check(); err != nil {
		return akmcp.Policy{}, fmt.Errorf("mcp-server: %w", err)
	}
	return p, nil
}
