package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/plugin"
)

// pluginEnv is where the plugin commands find the binary and the
// configuration files (a variable so that a test can replace it).
var pluginEnv = plugin.EnvFromOS

func newPluginCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Install agentkernel's MCP server into a coding agent's configuration",
		Long: `Plugin edits a coding agent's own configuration so that the agent starts
this binary's "agentkernel mcp-server" as an MCP server named agentkernel
(see docs/MCP.md). Targets:

  claude    Claude Code: .mcp.json in the current directory (--global:
            ~/.claude.json), and the skill .claude/skills/agentkernel/SKILL.md
            (--global: ~/.claude/skills/agentkernel/SKILL.md)
  codex     Codex: $CODEX_HOME/config.toml or ~/.codex/config.toml (Codex
            has no project configuration, so --global is implied)
  gemini    Gemini CLI: .gemini/settings.json (--global: ~/.gemini/settings.json)
  opencode  OpenCode: opencode.json (--global: ~/.config/opencode/opencode.json)
  mcp       any other MCP client: prints the mcpServers JSON, writes nothing

Existing configuration is merged: other keys, other servers and (in TOML)
comments are kept. An agentkernel entry that differs is replaced only with
--force; an identical one is left alone. The commands do not need the daemon.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newPluginInstallCmd(), newPluginUninstallCmd(), newPluginListCmd(app))
	return cmd
}

func pluginTargetNames() []string {
	var names []string
	for _, t := range plugin.Targets {
		names = append(names, t.Name)
	}
	return names
}

func newPluginInstallCmd() *cobra.Command {
	var global, force, dryRun bool
	cmd := &cobra.Command{
		Use:   "install TARGET",
		Short: "Add the agentkernel MCP server to an agent's configuration",
		Example: `  agentkernel plugin install claude            # ./.mcp.json and ./.claude/skills
  agentkernel plugin install gemini --global   # ~/.gemini/settings.json
  agentkernel plugin install codex --dry-run   # show the diff only
  agentkernel plugin install mcp               # print the JSON for another client`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: pluginTargetNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlugin(cmd, args[0], global, force, dryRun, false)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&global, "global", "g", false, "edit the user's configuration instead of the project's (the current directory)")
	f.BoolVarP(&force, "force", "f", false, "replace an agentkernel entry that differs")
	f.BoolVar(&dryRun, "dry-run", false, "print the changes as a diff and write nothing")
	return cmd
}

func newPluginUninstallCmd() *cobra.Command {
	var global, dryRun bool
	cmd := &cobra.Command{
		Use:       "uninstall TARGET",
		Short:     "Remove the agentkernel MCP server from an agent's configuration",
		Args:      cobra.ExactArgs(1),
		ValidArgs: pluginTargetNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlugin(cmd, args[0], global, false, dryRun, true)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&global, "global", "g", false, "edit the user's configuration instead of the project's (the current directory)")
	f.BoolVar(&dryRun, "dry-run", false, "print the changes as a diff and write nothing")
	return cmd
}

func runPlugin(cmd *cobra.Command, name string, global, force, dryRun, uninstall bool) error {
	t, err := plugin.Lookup(name)
	if err != nil {
		return err
	}
	env, err := pluginEnv()
	if err != nil {
		return err
	}
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if t.PrintOnly {
		if uninstall {
			fmt.Fprintln(errOut, "mcp: nothing was written, so there is nothing to uninstall; remove the agentkernel entry from your client's configuration")
			return nil
		}
		fmt.Fprintln(errOut, "Add this to your MCP client's configuration:")
		_, err := out.Write(plugin.Snippet(env.Bin))
		return err
	}
	if t.NoProject && !global {
		fmt.Fprintf(errOut, "%s has no project configuration; using the user's (--global implied)\n", t.Name)
	}
	changes, err := t.Plan(env, global, force, uninstall, plugin.ReadOS)
	if err != nil {
		return err
	}
	if dryRun {
		for _, c := range changes {
			fmt.Fprint(out, plugin.Diff(c.File.Path, c.Before, c.After, c.Exists, c.Status != plugin.StatusRemoved && (c.Exists || c.Status != plugin.StatusUnchanged)))
		}
		fmt.Fprintln(errOut, "dry run: nothing written")
		return nil
	}
	if err := plugin.Apply(changes); err != nil {
		return err
	}
	for _, c := range changes {
		reportChange(out, t.Name, c, uninstall)
	}
	return nil
}

func reportChange(w io.Writer, target string, c plugin.Change, uninstall bool) {
	p := c.File.Path
	switch {
	case c.Status == plugin.StatusUnchanged && uninstall:
		fmt.Fprintf(w, "%s: not installed in %s\n", target, p)
	case c.Status == plugin.StatusUnchanged:
		fmt.Fprintf(w, "%s: already installed in %s\n", target, p)
	case c.Status == plugin.StatusRemoved:
		fmt.Fprintf(w, "%s: removed %s\n", target, p)
	case uninstall:
		fmt.Fprintf(w, "%s: removed the agentkernel entry from %s\n", target, p)
	case c.Status == plugin.StatusCreated:
		fmt.Fprintf(w, "%s: created %s\n", target, p)
	default:
		fmt.Fprintf(w, "%s: updated %s\n", target, p)
	}
}

// pluginListRow is one line of plugin list (and its --json element).
type pluginListRow struct {
	Target    string `json:"target"`
	Scope     string `json:"scope"`
	File      string `json:"file"`
	Path      string `json:"path"`
	Installed bool   `json:"installed"`
	Current   bool   `json:"current"`
	Error     string `json:"error,omitempty"`
}

func newPluginListCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "Show where the agentkernel MCP server is installed",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := pluginEnv()
			if err != nil {
				return err
			}
			var rows []pluginListRow
			for _, t := range plugin.Targets {
				if t.PrintOnly {
					continue
				}
				scopes := []bool{false, true}
				if t.NoProject {
					scopes = []bool{true}
				}
				for _, global := range scopes {
					for _, s := range t.Inspect(env, global, plugin.ReadOS) {
						r := pluginListRow{Target: t.Name, Scope: "project", File: s.File.Label, Path: s.File.Path, Installed: s.Installed, Current: s.Current}
						if global {
							r.Scope = "global"
						}
						if s.Err != nil {
							r.Error = s.Err.Error()
						}
						rows = append(rows, r)
					}
				}
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TARGET\tSCOPE\tFILE\tSTATUS\tPATH")
			for _, r := range rows {
				status := "not installed"
				switch {
				case r.Error != "":
					status = "error: " + r.Error
				case r.Installed && r.Current:
					status = "installed"
				case r.Installed:
					status = "installed (differs; install --force to update)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Target, r.Scope, r.File, status, r.Path)
			}
			return tw.Flush()
		},
	}
}
