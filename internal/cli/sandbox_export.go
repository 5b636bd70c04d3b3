package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

func newExportCmd(app *App) *cobra.Command {
	var out, branch string
	cmd := &cobra.Command{
		Use:   "export NAME -o FILE.tar",
		Short: "Write a sandbox's whole filesystem to a tar file",
		Long: `Export writes the root filesystem of sandbox NAME (the layers of its image
with its own changes applied) as a tar archive to FILE, or to standard output
with "-o -". /proc, /sys, /dev and agentkernel's /.agentkernel are left out,
and so are the in-memory /tmp and /run. Owners are as the sandbox sees them.

With --branch B, export instead brings back what the sandbox changed in the
project it was given (create --agent --dir): branch B (agentkernel/… ) in
that repository, or a patch outside git; the working tree is not touched.

Only container sandboxes made from a pulled, imported or built image can be
exported. A running sandbox is exported as it is at that moment, without
pausing it. The file is written under a temporary name and renamed when the
transfer is complete, so a failed export leaves no partial FILE.`,
		Example: `  agentkernel sandbox export fix --branch agentkernel/fix
  agentkernel sandbox export dev -o dev.tar
  agentkernel sandbox export dev -o - | tar -t`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("branch") {
				c, err := connect(cmd, app, exitFailure)
				if err != nil {
					return err
				}
				return exportBranch(cmd, c, args[0], branch)
			}
			if out == "" {
				return fmt.Errorf("missing -o FILE: where to write the tar (- for standard output)")
			}
			if out == "-" && isTerminal(cmd.OutOrStdout()) {
				return fmt.Errorf("refusing to write a tar archive to a terminal; redirect standard output or use -o FILE")
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			rc, err := c.ExportSandbox(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer rc.Close()
			if out == "-" {
				if _, err := io.Copy(cmd.OutOrStdout(), rc); err != nil {
					return fmt.Errorf("exporting sandbox %s: %w", args[0], err)
				}
				return nil
			}
			return writeFileAtomic(out, rc)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", `file to write the tar to, "-" for standard output (required)`)
	cmd.Flags().StringVar(&branch, "branch", "", "bring the project's changes back as git branch `B` (agentkernel/…)")
	return cmd
}

// writeFileAtomic copies r to a temporary file next to path and renames it
// to path once complete; on any error nothing is left behind.
func writeFileAtomic(path string, r io.Reader) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = io.Copy(f, r); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
