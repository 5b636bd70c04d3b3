package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// newDetachedCmd is the group for background commands started with
// `exec -d`.
func newDetachedCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "detached",
		Aliases: []string{"bg"},
		Short:   "List, inspect and stop background commands (started with exec -d)",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(
		&cobra.Command{
			Use:     "list NAME",
			Aliases: []string{"ls"},
			Short:   "List a sandbox's background commands",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := connect(cmd, app, exitFailure)
				if err != nil {
					return err
				}
				list, err := c.ListDetached(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				if app.JSON {
					if list == nil {
						list = []api.DetachedCommand{}
					}
					return printJSON(cmd.OutOrStdout(), list)
				}
				now := time.Now()
				t := newTable(cmd.OutOrStdout(), "ID", "PID", "STATUS", "STARTED", "COMMAND")
				for _, d := range list {
					t.row(d.ID, strconv.Itoa(d.PID), detachedStatus(d), ago(now, d.StartedAt), strings.Join(d.Command, " "))
				}
				return t.flush()
			},
		},
		&cobra.Command{
			Use:     "info NAME ID",
			Aliases: []string{"inspect"},
			Short:   "Describe a background command",
			Args:    cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := connect(cmd, app, exitFailure)
				if err != nil {
					return err
				}
				d, err := c.GetDetached(cmd.Context(), args[0], args[1])
				if err != nil {
					return err
				}
				if app.JSON {
					return printJSON(cmd.OutOrStdout(), d)
				}
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "ID:       %s\n", oneLine(d.ID))
				fmt.Fprintf(w, "Sandbox:  %s\n", oneLine(d.Sandbox))
				fmt.Fprintf(w, "Command:  %s\n", oneLine(strings.Join(d.Command, " ")))
				fmt.Fprintf(w, "PID:      %d\n", d.PID)
				fmt.Fprintf(w, "Status:   %s\n", detachedStatus(d))
				fmt.Fprintf(w, "Started:  %s\n", d.StartedAt.Local().Format(time.RFC3339))
				return nil
			},
		},
		newDetachedLogsCmd(app),
		&cobra.Command{
			Use:     "kill NAME ID",
			Aliases: []string{"stop"},
			Short:   "Kill a background command",
			Args:    cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := connect(cmd, app, exitFailure)
				if err != nil {
					return err
				}
				return c.KillDetached(cmd.Context(), args[0], args[1])
			},
		},
	)
	return cmd
}

func newDetachedLogsCmd(app *App) *cobra.Command {
	var stream string
	cmd := &cobra.Command{
		Use:   "logs NAME ID",
		Short: "Print a background command's output (its stderr on stderr)",
		Long: `Logs prints what a background command wrote so far: its stdout on stdout
and its stderr on stderr, or with --stream only one of them, on stdout.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch stream {
			case "", "stdout", "stderr":
			default:
				return fmt.Errorf("invalid --stream %q: use stdout or stderr", stream)
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			logs, err := c.DetachedLogs(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), logs)
			}
			switch stream {
			case "stdout":
				fmt.Fprint(cmd.OutOrStdout(), logs.Stdout)
			case "stderr":
				fmt.Fprint(cmd.OutOrStdout(), logs.Stderr)
			default:
				fmt.Fprint(cmd.OutOrStdout(), logs.Stdout)
				fmt.Fprint(cmd.ErrOrStderr(), logs.Stderr)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stream, "stream", "", "print only `STREAM` (stdout or stderr) on stdout")
	return cmd
}

func detachedStatus(d api.DetachedCommand) string {
	if d.ExitCode != nil {
		return fmt.Sprintf("%s (exit %d)", d.Status, *d.ExitCode)
	}
	return d.Status
}
