package cli

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/plugin"
)

// The end of `agentkernel setup`: for each agent CLI found on PATH whose
// user configuration does not have the agentkernel MCP server yet, setup
// offers `plugin install NAME --global`. On a terminal it asks; otherwise
// it prints the command; with --plugins it installs without asking.

// agentCommands maps plugin targets to the command each agent installs.
var agentCommands = []struct{ target, command string }{
	{"claude", "claude"}, {"codex", "codex"}, {"gemini", "gemini"}, {"opencode", "opencode"},
}

// offerPlugins runs the step; install says --plugins was given, noAsk
// --yes (print the commands, as off a terminal).
func offerPlugins(cmd *cobra.Command, install, noAsk bool) error {
	env, err := pluginEnv()
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	ask := !install && !noAsk && isTerminal(cmd.InOrStdin())
	in := bufio.NewReader(cmd.InOrStdin())
	for _, a := range agentCommands {
		path, err := exec.LookPath(a.command)
		if err != nil {
			continue
		}
		t, err := plugin.Lookup(a.target)
		if err != nil {
			return err
		}
		changes, err := t.Plan(env, true, false, false, plugin.ReadOS)
		if err != nil {
			// An entry that differs: the user's to resolve (--force).
			fmt.Fprintf(out, "%s (%s): %v\n", a.target, path, err)
			continue
		}
		if allUnchanged(changes) {
			fmt.Fprintf(out, "%s (%s): the agentkernel MCP server is configured\n", a.target, path)
			continue
		}
		switch {
		case install:
		case ask:
			fmt.Fprintf(out, "Found %s (%s). Let it run code in agentkernel sandboxes (plugin install %s --global)? [y/N] ", a.target, path, a.target)
			if !yes(in) {
				continue
			}
		default:
			fmt.Fprintf(out, "Found %s (%s). To let it run code in agentkernel sandboxes: agentkernel plugin install %s --global\n", a.target, path, a.target)
			continue
		}
		if err := plugin.Apply(changes); err != nil {
			return fmt.Errorf("plugin install %s: %w", a.target, err)
		}
		for _, c := range changes {
			reportChange(out, a.target, c, false)
		}
	}
	return nil
}

func allUnchanged(changes []plugin.Change) bool {
	for _, c := range changes {
		if c.Status != plugin.StatusUnchanged {
			return false
		}
	}
	return true
}

func yes(r *bufio.Reader) bool {
	line, err := r.ReadString('\n')
	if err != nil && err != io.EOF {
		return false
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}
