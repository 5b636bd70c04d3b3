package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// maxSecretInput bounds a value read from stdin (the vault's own limit is
// lower; the daemon says so).
const maxSecretInput = 1 << 20

func newSecretCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage the secrets sandboxes may use without seeing them",
		Long: `Secret manages the daemon's vault: named values (API keys, tokens) kept
encrypted at rest. A sandbox uses one through a binding, --secret KEY:HOST
on run or create: its $KEY holds only a placeholder and its network gateway
adds the real value to HTTPS requests to HOST (Authorization: Bearer, or
x-api-key for api.anthropic.com, or the header given as KEY:HOST:HEADER).

Values are never taken from the command line (it shows in the process
list): set reads stdin, or prompts without echo on a terminal. The secret
commands work only over the daemon's Unix socket.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSecretSetCmd(app), newSecretGetCmd(app), newSecretListCmd(app), newSecretDeleteCmd(app))
	return cmd
}

func newSecretSetCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "set NAME",
		Short: "Store a secret, read from stdin or a prompt",
		Example: `  agentkernel secret set ANTHROPIC_API_KEY          # prompts
  printf %s "$TOKEN" | agentkernel secret set GITHUB_TOKEN`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			value, err := readSecretValue(cmd, args[0])
			if err != nil {
				return err
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			info, err := c.SetSecret(cmd.Context(), args[0], value)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), info.Name)
			return nil
		},
	}
}

// readSecretValue prompts for the value without echo when stdin is a
// terminal, else reads all of stdin less one trailing newline.
func readSecretValue(cmd *cobra.Command, name string) (string, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(cmd.ErrOrStderr(), "Value for %s: ", name)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", fmt.Errorf("reading the value: %w", err)
		}
		if len(b) == 0 {
			return "", fmt.Errorf("empty value; nothing stored")
		}
		return string(b), nil
	}
	b, err := io.ReadAll(io.LimitReader(in, maxSecretInput+1))
	if err != nil {
		return "", fmt.Errorf("reading the value from stdin: %w", err)
	}
	if len(b) > maxSecretInput {
		return "", fmt.Errorf("the value on stdin is larger than %d bytes", maxSecretInput)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return "", fmt.Errorf("no value on stdin (pipe it in, or run on a terminal to be prompted)")
	}
	return string(b), nil
}

func newSecretGetCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Print a secret's value",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			v, err := c.GetSecret(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), v)
			return nil
		},
	}
}

func newSecretListCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List secrets (names and dates, never values)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			list, err := c.ListSecrets(cmd.Context())
			if err != nil {
				return err
			}
			if app.JSON {
				if list == nil {
					list = []api.SecretInfo{}
				}
				return printJSON(cmd.OutOrStdout(), list)
			}
			now := time.Now()
			t := newTable(cmd.OutOrStdout(), "NAME", "CREATED", "UPDATED")
			for _, s := range list {
				t.row(s.Name, ago(now, s.CreatedAt), ago(now, s.UpdatedAt))
			}
			return t.flush()
		},
	}
}

func newSecretDeleteCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete secrets (sandboxes bound to one fail at their next start)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			for _, n := range args {
				if err := c.DeleteSecret(cmd.Context(), n); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
}
