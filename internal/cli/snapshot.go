package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func newSnapshotCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Take, list, restore and delete snapshots of sandboxes (files, and memory on gvisor)",
		Long: `A filesystem snapshot is a commit of a sandbox's changes (see "sandbox
commit") kept in the image store, with a record of where it came from.
Restore makes a new sandbox from it, on any backend; its processes start
fresh.

A memory snapshot (take --memory) also checkpoints the sandbox's memory
and processes, so that a sandbox restored from it continues them where
they were, with its own name, gateway and network identity. Only the
gvisor backend takes them (runsc checkpoint); the container backend would
need CRIU, which does not work on this host, and microvm does not yet. A
memory snapshot restores on its own backend only. Secrets are never in a
snapshot: a restored sandbox is bound to the same vault secrets again.
/tmp is not part of any snapshot.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newSnapshotTakeCmd(app), newSnapshotListCmd(app), newSnapshotInspectCmd(app),
		newSnapshotDeleteCmd(app), newSnapshotRestoreCmd(app))
	return cmd
}

func newSnapshotTakeCmd(app *App) *cobra.Command {
	var name string
	var memory bool
	cmd := &cobra.Command{
		Use:     "take SANDBOX [-n NAME]",
		Short:   "Take a filesystem snapshot of a sandbox",
		Example: "  agentkernel snapshot take dev -n dev-before-upgrade",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.ValidateSandboxName(args[0]); err != nil {
				return err
			}
			if name != "" {
				if err := api.ValidateSandboxName(name); err != nil {
					return fmt.Errorf("snapshot name: %w", err)
				}
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			snap, err := c.TakeSnapshot(cmd.Context(), api.TakeSnapshotRequest{Sandbox: args[0], Name: name, Memory: memory})
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), snap)
			}
			fmt.Fprintln(cmd.OutOrStdout(), oneLine(snap.Name))
			return nil
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "name of the snapshot (default SANDBOX-snap-UNIXTIME)")
	cmd.Flags().BoolVar(&memory, "memory", false, "also checkpoint memory and processes (gvisor only; the sandbox pauses meanwhile and connections to its agent end)")
	return cmd
}

func newSnapshotListCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List snapshots",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			snaps, err := c.ListSnapshots(cmd.Context())
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), snaps)
			}
			t := newTable(cmd.OutOrStdout(), "NAME", "SANDBOX", "BACKEND", "SIZE", "CREATED")
			for _, s := range snaps {
				t.row(s.Name, s.SourceSandbox, s.SourceBackend, strconv.FormatInt(s.Size, 10), s.CreatedAt.Format("2006-01-02 15:04:05"))
			}
			return t.flush()
		},
	}
}

func newSnapshotInspectCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME",
		Short: "Describe a snapshot (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.ValidateSandboxName(args[0]); err != nil {
				return fmt.Errorf("snapshot name: %w", err)
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			snap, err := c.GetSnapshot(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), snap)
		},
	}
}

func newSnapshotDeleteCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a snapshot (refused while a running sandbox uses it)",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.ValidateSandboxName(args[0]); err != nil {
				return fmt.Errorf("snapshot name: %w", err)
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			return c.DeleteSnapshot(cmd.Context(), args[0])
		},
	}
}

func newSnapshotRestoreCmd(app *App) *cobra.Command {
	var as, backend, ttl string
	cmd := &cobra.Command{
		Use:     "restore NAME [--as NEW] [-B BACKEND] [--ttl DURATION]",
		Short:   "Create and start a sandbox from a snapshot",
		Example: "  agentkernel snapshot restore dev-before-upgrade --as dev2 -B gvisor",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.ValidateSandboxName(args[0]); err != nil {
				return fmt.Errorf("snapshot name: %w", err)
			}
			if as != "" {
				if err := api.ValidateSandboxName(as); err != nil {
					return err
				}
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			sb, err := c.RestoreSnapshot(cmd.Context(), args[0], api.RestoreSnapshotRequest{As: as, Backend: backend, TTL: ttl})
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), sb)
			}
			fmt.Fprintln(cmd.OutOrStdout(), oneLine(sb.Name))
			return nil
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "name of the new sandbox (default the snapshot's name)")
	cmd.Flags().StringVarP(&backend, "backend", "B", "", "backend of the new sandbox (default the source's)")
	cmd.Flags().StringVar(&ttl, "ttl", "", "remove the new sandbox after this long (its own TTL; the source's is not inherited)")
	return cmd
}

func newForkCmd(app *App) *cobra.Command {
	var count int
	var prefix string
	cmd := &cobra.Command{
		Use:   "fork NAME [--count N] [--as PREFIX]",
		Short: "Copy a sandbox into N new sandboxes (with its processes on gvisor)",
		Long: `Fork takes a snapshot of sandbox NAME and restores it N times as
PREFIX-1..PREFIX-N (default prefix NAME-fork). The children share the
snapshot's layers. On a backend that takes memory snapshots (gvisor) it is
a memory snapshot and each child continues the parent's processes;
elsewhere their processes start fresh, as the answer's note says.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := api.ValidateSandboxName(args[0]); err != nil {
				return err
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			out, err := c.ForkSandbox(cmd.Context(), args[0], api.ForkSandboxRequest{Count: count, Prefix: prefix})
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			for _, sb := range out.Sandboxes {
				fmt.Fprintln(cmd.OutOrStdout(), oneLine(sb.Name))
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "note: "+out.Note)
			return nil
		},
	}
	cmd.Flags().IntVar(&count, "count", 1, "how many children")
	cmd.Flags().StringVar(&prefix, "as", "", "prefix of the children's names (default NAME-fork)")
	return cmd
}
