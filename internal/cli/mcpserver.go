package cli

import (
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	akmcp "github.com/agentkernel/agentkernel/internal/mcp"
)

func newMCPServerCmd(app *App) *cobra.Command {
	var policy akmcp.Policy
	cmd := &cobra.Command{
		Use:   "mcp-server",
		Short: "Serve the Model Context Protocol on stdin/stdout",
		Long: `mcp-server speaks MCP over stdin and stdout, for an AI agent to run commands
in sandboxes: tools sandbox_run, sandbox_create, sandbox_exec, sandbox_list,
sandbox_remove, sandbox_file_read and sandbox_file_write. It is a client of
the daemon, which it starts if none is running.

The flags are the user's policy: a tool may narrow it, never widen it.
Sandboxes the session creates are removed when it ends, unless
sandbox_create was given keep=true.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch policy.Profile {
			case "restrictive", "moderate", "permissive":
			default:
				return withCode(exitFailure, errBadProfile(policy.Profile))
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			return akmcp.Serve(cmd.Context(), c, policy, &mcp.StdioTransport{})
		},
	}
	f := cmd.Flags()
	f.StringVar(&policy.Profile, "profile", "moderate", "the most permissive security profile a tool may ask for: restrictive, moderate or permissive")
	f.StringArrayVar(&policy.AllowedImages, "image", nil, "an image tools may use (repeatable; default: any; the first is the default image)")
	f.IntVar(&policy.MaxSandboxes, "max-sandboxes", 10, "the most sandboxes the session may hold at once (0: no limit)")
	f.IntVar(&policy.MaxOutputBytes, "max-output", akmcp.DefaultMaxOutputBytes, "bytes of each output stream or file kept; beyond, it is cut in the middle")
	return cmd
}

type errBadProfile string

func (e errBadProfile) Error() string {
	return "--profile " + string(e) + ": want restrictive, moderate or permissive"
}
