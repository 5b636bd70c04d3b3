package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func newDoctorCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use: "doctor",
		// status is upstream's name for its installation check.
		Aliases: []string{"status"},
		Short:   "Check that this host can run sandboxes",
		Long: `Doctor asks the daemon to check the host's prerequisites and prints each
check with ✓ or ✗, what it found and how to fix it. It exits 1 when a check
fails (also when the daemon cannot be reached).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			checks, err := doctorChecks(cmd, app)
			if app.JSON {
				if err := printJSON(cmd.OutOrStdout(), checks); err != nil {
					return err
				}
			} else {
				printChecks(cmd, checks)
				printBackends(cmd, app)
			}
			if err != nil {
				return &ExitError{Code: exitFailure}
			}
			for _, ch := range checks {
				if !ch.OK {
					return &ExitError{Code: exitFailure}
				}
			}
			return nil
		},
	}
}

// doctorChecks asks the daemon; a daemon that cannot be asked is itself a
// failed check, so doctor always has something to say.
func doctorChecks(cmd *cobra.Command, app *App) ([]api.DoctorCheck, error) {
	fail := func(err error) ([]api.DoctorCheck, error) {
		return []api.DoctorCheck{{Name: "daemon", Detail: err.Error(),
			Fix: "run 'agentkernel serve' (Linux) and check its log, or point --url/--socket at a running daemon"}}, err
	}
	c, err := app.Connect(cmd.Context())
	if err != nil {
		return fail(err)
	}
	checks, err := c.Doctor(cmd.Context())
	if err != nil {
		return fail(err)
	}
	if checks == nil {
		checks = []api.DoctorCheck{}
	}
	return checks, nil
}

// printBackends lists the backends and their capabilities (GET /backends)
// after the checks; a daemon that cannot say is already a failed check.
func printBackends(cmd *cobra.Command, app *App) {
	c, err := app.Connect(cmd.Context())
	if err != nil {
		return
	}
	bs, err := c.Backends(cmd.Context())
	if err != nil || len(bs) == 0 {
		return
	}
	w := cmd.OutOrStdout()
	fmt.Fprintln(w, "backends:")
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	for _, b := range bs {
		def := ""
		if b.Default {
			def = " (default)"
		}
		platform := ""
		if b.Platform != "" {
			platform = ", platform " + oneLine(b.Platform)
		}
		fmt.Fprintf(w, "  %s%s: isolation %s, pause %s, checkpoint %s, network gateway %s%s\n",
			oneLine(b.Name), def, oneLine(b.Isolation), yes(b.Pause), yes(b.Checkpoint), yes(b.NetworkGateway), platform)
	}
}

func printChecks(cmd *cobra.Command, checks []api.DoctorCheck) {
	w := cmd.OutOrStdout()
	for _, ch := range checks {
		mark := "✓"
		if !ch.OK {
			mark = "✗"
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, oneLine(ch.Name), oneLine(ch.Detail))
		if !ch.OK && ch.Fix != "" {
			fmt.Fprintf(w, "    fix: %s\n", oneLine(ch.Fix))
		}
	}
}
