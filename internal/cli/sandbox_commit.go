package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func newCommitCmd(app *App) *cobra.Command {
	var tag, message string
	cmd := &cobra.Command{
		Use:   "commit NAME -t IMAGE",
		Short: "Save a sandbox's changes as a new image",
		Long: `Commit saves what sandbox NAME changed in its root filesystem as a new
layer on top of the image it was made from, and names the result IMAGE (a
name already in use moves to the new image).

Only container sandboxes made from a pulled, imported or built image can be
committed; host-image sandboxes have no layers (copy their /root or /home
out with "agentkernel cp" instead). A running sandbox is committed as it is
at that moment, without pausing it; /tmp and /run are in-memory and never
committed.`,
		Example: `  agentkernel sandbox commit dev -t dev-snapshot:1
  agentkernel run --image dev-snapshot:1 -- ls /root`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tag == "" {
				return fmt.Errorf("missing -t IMAGE: the name of the image to make")
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			img, err := c.CommitSandbox(cmd.Context(), args[0], api.CommitSandboxRequest{Image: tag, Message: message})
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), img)
			}
			fmt.Fprintln(cmd.OutOrStdout(), oneLine(img.Name))
			return nil
		},
	}
	cmd.Flags().StringVarP(&tag, "tag", "t", "", "name of the image to make (required)")
	cmd.Flags().StringVarP(&message, "message", "m", "", "a note recorded as the image's source")
	return cmd
}
