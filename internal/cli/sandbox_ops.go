package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func newStartCmd(app *App) *cobra.Command {
	var backend string
	cmd := eachSandboxInfo(app, "start", "Start stopped sandboxes", func(c *client.Client, ctx context.Context, name string) (api.SandboxInfo, error) {
		if backend != "" {
			if err := checkBackend(ctx, c, name, backend); err != nil {
				return api.SandboxInfo{}, err
			}
		}
		return c.StartSandbox(ctx, name)
	})
	cmd.Flags().StringVarP(&backend, "backend", "B", "", "refuse to start a sandbox that is not on this backend (upstream's flag; a sandbox keeps the backend it was created with)")
	return cmd
}

// checkBackend fails unless sandbox name runs on backend (upstream's names
// taken as ours).
func checkBackend(ctx context.Context, c *client.Client, name, backend string) error {
	want, _, err := api.UpstreamBackend(backend)
	if err != nil {
		return err
	}
	info, err := c.GetSandbox(ctx, name)
	if err != nil {
		return err
	}
	if info.Backend != want {
		return fmt.Errorf("%w: sandbox %s is on backend %s, not %s; a sandbox keeps the backend it was created with", errdefs.ErrFailedPrecondition, name, info.Backend, want)
	}
	return nil
}

func newStopCmd(app *App) *cobra.Command {
	return eachSandboxInfo(app, "stop", "Stop running sandboxes", (*client.Client).StopSandbox)
}

func newPauseCmd(app *App) *cobra.Command {
	return eachSandboxInfo(app, "pause", "Freeze running sandboxes' processes (kept, using no CPU)", (*client.Client).PauseSandbox)
}

func newResumeCmd(app *App) *cobra.Command {
	return eachSandboxInfo(app, "resume", "Let paused sandboxes' processes go on where they were", (*client.Client).ResumeSandbox)
}

// eachSandboxInfo is eachSandbox for an operation that answers the
// sandbox's new state, which it prints.
func eachSandboxInfo(app *App, verb, short string, op func(*client.Client, context.Context, string) (api.SandboxInfo, error)) *cobra.Command {
	return eachSandbox(app, verb, short, func(cmd *cobra.Command, c *client.Client, name string) error {
		info, err := op(c, cmd.Context(), name)
		if err != nil {
			return err
		}
		return printSandbox(cmd.OutOrStdout(), app.JSON, info)
	})
}

func newRemoveCmd(app *App) *cobra.Command {
	cmd := eachSandbox(app, "remove", "Remove sandboxes (stopping them first)", func(cmd *cobra.Command, c *client.Client, name string) error {
		if err := c.RemoveSandbox(cmd.Context(), name); err != nil {
			return err
		}
		forgetWork(name)
		if app.JSON {
			return printJSON(cmd.OutOrStdout(), map[string]string{"removed": name})
		}
		fmt.Fprintln(cmd.OutOrStdout(), oneLine(name))
		return nil
	})
	cmd.Aliases = []string{"rm", "delete"}
	return cmd
}

// eachSandbox builds a command that applies fn to every NAME argument,
// going on after a failure; any failure makes the command fail.
func eachSandbox(app *App, verb, short string, fn func(*cobra.Command, *client.Client, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME...",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			var failed []error
			for _, name := range args {
				if err := fn(cmd, c, name); err != nil {
					if len(args) == 1 {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "agentkernel: %s: %v\n", oneLine(name), err)
					failed = append(failed, err)
				}
			}
			if len(failed) > 0 {
				return &ExitError{Code: exitFailure, Err: fmt.Errorf("%d of %d sandboxes failed to %s", len(failed), len(args), verb)}
			}
			return nil
		},
	}
}

func newExtendCmd(app *App) *cobra.Command {
	var by string
	cmd := &cobra.Command{
		Use: "extend NAME --by DURATION",
		// extend-ttl is upstream's name.
		Aliases: []string{"extend-ttl"},
		Short:   "Push back a sandbox's expiry",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if by == "" {
				return errors.New("--by is required (e.g. --by 1h)")
			}
			if _, err := parseDuration("--by", by); err != nil {
				return err
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			resp, err := c.ExtendSandbox(cmd.Context(), args[0], by)
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), resp)
			}
			if resp.ExpiresAt == nil {
				fmt.Fprintln(cmd.OutOrStdout(), "never")
				return nil
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.ExpiresAt.Local().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&by, "by", "", "how much longer the sandbox may live (`DURATION`, e.g. 30m, 2h, 1d)")
	return cmd
}

func newLogsCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "logs NAME",
		Short: "Print a sandbox's audit trail (created, started, exec, …)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			evs, err := c.SandboxLogs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if app.JSON {
				if evs == nil {
					evs = []api.LogEvent{}
				}
				return printJSON(cmd.OutOrStdout(), evs)
			}
			return printLogs(cmd, evs)
		},
	}
}

func printLogs(cmd *cobra.Command, evs []api.LogEvent) error {
	w := cmd.OutOrStdout()
	for _, ev := range evs {
		details := ""
		if len(ev.Details) > 0 {
			b, err := jsonCompact(ev.Details)
			if err == nil {
				details = " " + b
			}
		}
		fmt.Fprintf(w, "%s  %s%s\n", ev.Timestamp.Local().Format(time.RFC3339), oneLine(ev.Event), oneLine(details))
	}
	return nil
}
