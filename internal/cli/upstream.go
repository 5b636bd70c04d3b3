package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// noteUpstreamBackend prints one line on stderr when name is an upstream
// backend name that the daemon takes as one of ours (api.UpstreamBackend;
// the daemon refuses apple and hyperlight with the reason).
func noteUpstreamBackend(cmd *cobra.Command, name string) {
	if ours, note, err := api.UpstreamBackend(name); err == nil && note != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "agentkernel: backend %q is taken as %s (%s)\n", name, ours, note)
	}
}

// upstreamSandboxCmds are upstream's names under `sandbox` for commands we
// have elsewhere: `sandbox cp` (our cp) and `sandbox exec-list|exec-logs|
// exec-kill` (our detached list|logs|kill). They are the same commands,
// built again, since a cobra alias cannot cross parents.
func upstreamSandboxCmds(app *App) []*cobra.Command {
	out := []*cobra.Command{newCpCmd(app)}
	renames := map[string]string{"list": "exec-list", "logs": "exec-logs", "kill": "exec-kill"}
	detached := newDetachedCmd(app)
	for _, c := range detached.Commands() {
		name, ok := renames[c.Name()]
		if !ok {
			continue
		}
		detached.RemoveCommand(c)
		c.Short += " (also: agentkernel detached " + c.Name() + ")"
		c.Use = name + strings.TrimPrefix(c.Use, c.Name())
		c.Aliases = nil
		out = append(out, c)
	}
	return out
}

// newCompletionsCmd is upstream's `completions SHELL`, the same scripts as
// cobra's `completion SHELL` (hidden: help lists that one).
func newCompletionsCmd() *cobra.Command {
	return &cobra.Command{
		Use:       "completions SHELL",
		Short:     "Print the shell completion script for bash, zsh, fish or powershell (as completion SHELL)",
		Hidden:    true,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish", "powershell"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, w := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(w, true)
			case "zsh":
				return root.GenZshCompletion(w)
			case "fish":
				return root.GenFishCompletion(w, true)
			case "powershell":
				return root.GenPowerShellCompletionWithDesc(w)
			}
			return fmt.Errorf("unknown shell %q: use bash, zsh, fish or powershell", args[0])
		},
	}
}
