package cli

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func newImageCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "image",
		Aliases: []string{"images"},
		Short:   "Pull, list, inspect, tag, import, remove and prune images",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(newImagePullCmd(app), newImageInspectCmd(app), newImageTagCmd(app), newImagePruneCmd(app))
	cmd.AddCommand(
		&cobra.Command{
			Use:     "list",
			Aliases: []string{"ls", "local-list"}, // local-list: upstream's name for its built images
			Short:   "List images",
			Args:    cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := connect(cmd, app, exitFailure)
				if err != nil {
					return err
				}
				list, err := c.ListImages(cmd.Context())
				if err != nil {
					return err
				}
				if app.JSON {
					if list == nil {
						list = []api.ImageInfo{}
					}
					return printJSON(cmd.OutOrStdout(), list)
				}
				now := time.Now()
				t := newTable(cmd.OutOrStdout(), "NAME", "ID", "SIZE", "CREATED", "SOURCE")
				for _, img := range list {
					t.row(img.Name, shortID(img.ID), humanSize(img.Size), ago(now, img.CreatedAt), orDash(img.Source))
				}
				return t.flush()
			},
		},
		&cobra.Command{
			Use:   "import NAME PATH",
			Short: "Import a root filesystem directory or tarball as image NAME",
			Long: `Import makes an image called NAME from PATH, a root filesystem directory or
a tarball on this host. The daemon reads PATH itself.`,
			Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				path, err := filepath.Abs(args[1])
				if err != nil {
					return err
				}
				c, err := connect(cmd, app, exitFailure)
				if err != nil {
					return err
				}
				img, err := c.ImportImage(cmd.Context(), api.ImportImageRequest{Name: args[0], Path: path})
				if err != nil {
					return err
				}
				if app.JSON {
					return printJSON(cmd.OutOrStdout(), img)
				}
				fmt.Fprintln(cmd.OutOrStdout(), oneLine(img.Name))
				return nil
			},
		},
		&cobra.Command{
			Use:     "remove NAME",
			Aliases: []string{"rm", "local-delete"}, // local-delete: upstream's, for a built image
			Short:   "Remove an image",
			Args:    cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := connect(cmd, app, exitFailure)
				if err != nil {
					return err
				}
				if err := c.RemoveImage(cmd.Context(), args[0]); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), oneLine(args[0]))
				return nil
			},
		},
	)
	return cmd
}

// shortID trims a digest for tables ("sha256:0123456789ab").
func shortID(id string) string {
	const keep = len("sha256:") + 12
	if len(id) > keep {
		return id[:keep]
	}
	return orDash(id)
}

// humanSize renders bytes in binary units.
func humanSize(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	f := float64(n) / 1024
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
