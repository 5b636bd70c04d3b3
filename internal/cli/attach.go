package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

func newAttachCmd(app *App) *cobra.Command {
	var (
		env  []string
		user string
	)
	cmd := &cobra.Command{
		Use:   "attach NAME [-- CMD [ARG...]]",
		Short: "Open an interactive shell in a running sandbox",
		Long: `Attach opens a login shell (or CMD) with a terminal in the sandbox NAME.
The local terminal is in raw mode while attached and the shell's window
follows its size; it is restored however attach ends. Leave with 'exit' or
Ctrl-D; attach exits with the shell's exit code (125 when agentkernel failed).`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, command := args[0], args[1:]
			if d := cmd.ArgsLenAtDash(); d >= 0 && d != 1 {
				return withCode(exitCLI, fmt.Errorf("want exactly one sandbox name before --"))
			}
			envs, err := parseEnv(env)
			if err != nil {
				return withCode(exitCLI, err)
			}
			lio := newLocalIO(cmd, true, true)
			req := api.ExecRequest{Command: command, Env: envs, User: user, TTY: true}
			req.Rows, req.Cols = lio.size()

			return streamSession(cmd, app, lio, func(ctx context.Context, c *client.Client) (*client.Stream, error) {
				return c.Attach(ctx, name, req)
			})
		},
	}
	cmd.SetFlagErrorFunc(flagError(exitCLI))
	cmd.Flags().StringArrayVarP(&env, "env", "e", nil, "set an environment variable `KEY=VALUE` (repeatable)")
	cmd.Flags().StringVarP(&user, "user", "u", "", "run as `USER` (name or uid[:gid]) inside the sandbox")
	return cmd
}
