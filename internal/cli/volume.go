package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func newVolumeCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "volume",
		Aliases: []string{"volumes"},
		Short:   "Create, list, describe and delete named volumes",
		Long: `A named volume is a persistent, size-limited filesystem kept by the daemon
(under its home, in volumes/NAME) until it is deleted: removing a sandbox
keeps it. Mount it with -v/--volume NAME:/PATH[:ro|:shared] on run and
create. Writing past its size fails with "No space left on device".

A read-write use needs the volume alone: while one running sandbox has it
read-write, another is refused. Read-only uses (:ro) go side by side;
:shared uses (read-write) go side by side with each other and with
read-only ones on the container and gvisor backends, which mount it once
on the host. A microVM cannot share a volume read-write.`,
		Example: `  agentkernel volume create cache --size 2GB
  agentkernel run -v cache:/cache -- sh -c 'echo hi > /cache/f'
  agentkernel run -v cache:/cache:ro -- cat /cache/f`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newVolumeCreateCmd(app), newVolumeListCmd(app), newVolumeInfoCmd(app), newVolumeDeleteCmd(app))
	return cmd
}

func newVolumeCreateCmd(app *App) *cobra.Command {
	var size string
	cmd := &cobra.Command{
		Use:     "create NAME [-s SIZE]",
		Short:   "Create a named volume",
		Example: "  agentkernel volume create data -s 512MB",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.ValidateVolumeName(args[0]); err != nil {
				return err
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			v, err := c.CreateVolume(cmd.Context(), api.CreateVolumeRequest{Name: args[0], Size: size})
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (%s)\n", v.Name, humanSize(v.SizeBytes))
			return nil
		},
	}
	cmd.Flags().StringVarP(&size, "size", "s", "", "the volume's size limit, as 512MB or 2GB (default 1GB; the image is sparse, so only what is written takes disk)")
	return cmd
}

func newVolumeListCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List named volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			vols, err := c.ListVolumes(cmd.Context())
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), vols)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "SIZE", "USED", "CREATED", "MOUNTS")
			for _, v := range vols {
				t.row(v.Name, humanSize(v.SizeBytes), humanSize(v.UsedBytes), v.CreatedAt.Local().Format("2006-01-02 15:04:05"), strconv.Itoa(v.Mounts))
			}
			return t.flush()
		},
	}
}

func newVolumeInfoCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "info NAME",
		Aliases: []string{"inspect"},
		Short:   "Describe a named volume and the sandboxes that use it",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.ValidateVolumeName(args[0]); err != nil {
				return err
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			v, err := c.GetVolume(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "Name:     %s\nSize:     %s\nUsed:     %s\nCreated:  %s\nMounts:   %d\n",
				v.Name, humanSize(v.SizeBytes), humanSize(v.UsedBytes), v.CreatedAt.Local().Format("2006-01-02 15:04:05"), v.Mounts)
			for _, u := range v.UsedBy {
				state := "not running"
				if u.Mounted {
					state = "mounted"
				}
				fmt.Fprintf(w, "  %s at %s (%s, %s)\n", oneLine(u.Sandbox), oneLine(u.Path), u.Mode, state)
			}
			return nil
		},
	}
}

func newVolumeDeleteCmd(app *App) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "delete NAME [-f]",
		Aliases: []string{"rm", "remove"},
		Short:   "Delete a named volume and its data",
		Long: `Delete removes a volume and everything in it. While a sandbox (running or
not) names the volume it is refused, naming them; --force deletes it anyway:
a running sandbox that has it mounted keeps using its data, now without a
name, until it stops (nothing it writes is corrupted), and the space is
then freed; a stopped sandbox that names it will not start again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.ValidateVolumeName(args[0]); err != nil {
				return err
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			out, err := c.DeleteVolume(cmd.Context(), args[0], force)
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted volume %s\n", oneLine(out.Name))
			if len(out.Detached) > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "still mounted, until they stop, by: %s\n", oneLine(strings.Join(out.Detached, ", ")))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete even while sandboxes use the volume (see above)")
	return cmd
}

// volumeFlagUsage is the help of run's and create's -v/--volume.
const volumeFlagUsage = "mount named volume `NAME:/PATH[:ro|:shared]` (repeatable; see agentkernel volume)"
