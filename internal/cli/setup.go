package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// SetupFunc does the work of `agentkernel setup`. The CLI may not import
// the backends, so cmd/agentkernel sets it (from internal/daemon.Setup).
var SetupFunc func(ctx context.Context, skipDisk bool, logf func(format string, args ...any)) error

func newSetupCmd(app *App) *cobra.Command {
	var skipDisk, plugins, yes bool
	var agentNames []string
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Install what microVM sandboxes need (guest kernel, host disk)",
		Long: `Setup prepares this host for the microvm backend, locally and without the
daemon. It fetches Debian's linux-image-cloud-amd64 with apt-get download
(never installing it into /boot), unpacks the kernel and the virtio modules
into $AGENTKERNEL_HOME/kernel, builds the host image's disk (a copy of /usr;
this takes a minute or more, once per host state; --skip-disk defers it to
the first microVM start) and tells which accelerator microVMs will use: KVM
when a test boot works, else TCG software emulation (slow).

Downloaded kernels and the host disk are cached in /var/cache/agentkernel, so
another home or a rerun copies instead of downloading. Run it again after a
kernel update. Needs root.

With --agents (optionally naming some: --agents claude,codex), setup builds
the AI coding agents' images instead, through the daemon: a minimal Debian,
Node.js and npm from the npm registry (checksums pinned), and each agent's
CLI from its npm package at a pinned version. Only the npm registry is
reached, through the build's network gateway. Images already built from the
same inputs are kept; see agentkernel agents.

Last, for each agent CLI on PATH (claude, codex, gemini, opencode) whose
configuration lacks the agentkernel MCP server, setup offers to add it
(plugin install NAME --global): it asks on a terminal, prints the command
otherwise, and installs without asking with --plugins.`,
		// With --agents, the arguments are more agent names
		// ("setup --agents claude codex").
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := cmd.OutOrStdout()
			if cmd.Flags().Changed("agents") {
				c, err := connect(cmd, app, exitFailure)
				if err != nil {
					return err
				}
				if err := buildAgentImages(cmd.Context(), c, append(agentNames, args...), w); err != nil {
					return err
				}
				return offerPlugins(cmd, plugins, yes)
			}
			if len(args) > 0 {
				return fmt.Errorf("setup takes no arguments (agent names go with --agents)")
			}
			if SetupFunc == nil {
				return errors.New("setup is not available in this build")
			}
			err := SetupFunc(cmd.Context(), skipDisk, func(format string, a ...any) {
				fmt.Fprintf(w, format+"\n", a...)
			})
			if err != nil {
				return err
			}
			return offerPlugins(cmd, plugins, yes)
		},
	}
	cmd.Flags().BoolVar(&skipDisk, "skip-disk", false, "do not build the host image's disk now")
	cmd.Flags().StringSliceVar(&agentNames, "agents", nil, "build the agents' images instead (all, or the `NAMES` given: claude,codex,gemini,opencode)")
	cmd.Flags().Lookup("agents").NoOptDefVal = " "
	cmd.Flags().BoolVar(&plugins, "plugins", false, "add the agentkernel MCP server to every agent CLI found on PATH without asking")
	// Upstream's -y/--yes: run without questions, taking the defaults.
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "ask nothing: agent CLIs found on PATH are left alone (the commands to add the MCP server are printed)")
	return cmd
}
