package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/client"
)

type execOptions struct {
	execFlags
	detach bool
}

func newExecCmd(app *App) *cobra.Command {
	var o execOptions
	cmd := &cobra.Command{
		Use:   "exec [flags] NAME [--] CMD [ARG...]",
		Short: "Run a command in a running sandbox",
		Long: `Exec runs CMD in the sandbox NAME, streams its stdout and stderr live and
exits with its exit code.

Flags go before NAME; everything after NAME is the command's own, flags
included (a -- after NAME is allowed and dropped):
  agentkernel exec dev ls -la
Stdin is forwarded when it is a pipe or a file, or always with -i; -t gives
the command a terminal (with -i the local terminal goes raw and its size is
followed). Ctrl-C is forwarded to the command; a second one disconnects.

With -d the command runs in the background: exec prints its id and returns.
Manage background commands with 'agentkernel detached' (list, info, logs,
kill).

Exit status: CMD's own, or 125 when agentkernel itself failed.`,
		Example: `  agentkernel exec dev -- npm test
  agentkernel exec -it dev -- bash
  agentkernel exec -d dev -- python3 -m http.server 8000
  echo 'print(42)' | agentkernel exec dev -- python3`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, command, err := splitCommand(args, cmd.ArgsLenAtDash())
			if err != nil {
				return withCode(exitCLI, err)
			}
			return runExec(cmd, app, &o, name, command)
		},
	}
	cmd.SetFlagErrorFunc(execFlagError)
	// Everything after NAME is the command's, flags too, as upstream and
	// docker exec have it: exec dev ls -d /tmp lists /tmp itself.
	cmd.Flags().SetInterspersed(false)
	o.execFlags.register(cmd, "i")
	cmd.Flags().StringVarP(&o.user, "user", "u", "", "run as `USER` (name or uid[:gid]) inside the sandbox")
	cmd.Flags().BoolVarP(&o.detach, "detach", "d", false, "run in the background and print the command's id")
	// Upstream's --sudo; the daemon takes it as --user 0 (root in the sandbox, not on the host).
	cmd.Flags().BoolVar(&o.sudo, "sudo", false, "run as root inside the sandbox (like --user 0)")
	return cmd
}

// execFlagError adds the usual cause of an unknown flag in exec: the
// command's own flags without --.
func execFlagError(cmd *cobra.Command, err error) error {
	return &ExitError{Code: exitCLI, Err: fmt.Errorf("%w\nPut the command after --: agentkernel exec NAME -- CMD [ARG...]", err)}
}

func runExec(cmd *cobra.Command, app *App, o *execOptions, name string, command []string) error {
	req, err := o.request(command)
	if err != nil {
		return withCode(exitCLI, err)
	}
	if o.detach {
		if o.tty || o.interactive {
			return withCode(exitCLI, fmt.Errorf("-d does not go with -i or -t"))
		}
		c, err := connect(cmd, app, exitCLI)
		if err != nil {
			return err
		}
		d, err := c.ExecDetached(cmd.Context(), name, req)
		if err != nil {
			return withCode(exitCLI, err)
		}
		if app.JSON {
			return printJSON(cmd.OutOrStdout(), d)
		}
		fmt.Fprintln(cmd.OutOrStdout(), d.ID)
		return nil
	}

	if o.receipt != "" {
		c, err := connect(cmd, app, exitCLI)
		if err != nil {
			return err
		}
		return execWithReceipt(cmd, c, name, req, o.receipt)
	}
	lio := newLocalIO(cmd, forwardStdin(cmd, o.interactive), o.tty)
	req.Rows, req.Cols = lio.size()
	return streamSession(cmd, app, lio, func(ctx context.Context, c *client.Client) (*client.Stream, error) {
		return c.ExecStream(ctx, name, req)
	})
}

// streamSession runs one interactive or streaming process: it relays
// signals, pumps the local terminal or pipes through the stream opened by
// open, and turns the remote exit into the CLI's exit code.
func streamSession(cmd *cobra.Command, app *App, lio localIO, open func(context.Context, *client.Client) (*client.Stream, error)) error {
	ctx, abandon := context.WithCancel(cmd.Context())
	defer abandon()
	r := newRelay(abandon)
	defer r.stop()
	ignoreSIGPIPE()

	c, err := connect(cmd, app, exitCLI)
	if err != nil {
		return err
	}
	s, err := open(ctx, c)
	if err != nil {
		return withCode(exitCLI, err)
	}
	defer s.Close()
	r.attach(s)
	exit, err := pump(s, lio)
	if err != nil {
		if sig := r.interrupted(); sig != 0 {
			return &ExitError{Code: 128 + int(sig)}
		}
		return withCode(exitCLI, err)
	}
	exitMessage(cmd.ErrOrStderr(), exit)
	if exit.ExitCode != 0 {
		return &ExitError{Code: exit.ExitCode}
	}
	return nil
}
