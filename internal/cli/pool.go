package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func newPoolCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Manage warm pools of fresh sandboxes",
		Long: `Warm pools keep sandboxes started and never used, so that a create or run
that matches one is ready in milliseconds. A pool is keyed by what must be
decided before a sandbox starts: backend, image, profile, memory and vCPUs.
A matching request gets a fresh sandbox of its own, with its name, labels,
TTL, environment, secrets and network policy bound at claim time; after use
a sandbox is removed, never returned. A request with host directories,
published ports or --no-pool is created cold.

Sizes set here last until the daemon stops; daemon.toml's [pools] and
serve --pool set them at start.`,
	}
	cmd.AddCommand(newPoolListCmd(app), newPoolSetCmd(app), newPoolDrainCmd(app))
	return cmd
}

func newPoolListCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the warm pools",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := app.Connect(cmd.Context())
			if err != nil {
				return err
			}
			pools, err := c.ListPools(cmd.Context())
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), pools)
			}
			t := newTable(cmd.OutOrStdout(), "BACKEND", "IMAGE", "PROFILE", "MEMORY", "VCPUS", "DISK", "SIZE", "READY", "STARTING", "CLAIMED", "MISSED", "NOTE")
			for _, p := range pools {
				note := p.Held
				if p.LastError != "" {
					note = "last error: " + p.LastError
				}
				t.row(p.Backend, p.Image, p.Profile, strconv.Itoa(p.MemoryMB)+" MiB", strconv.Itoa(p.VCPUs), strconv.Itoa(p.DiskMB)+" MiB", strconv.Itoa(p.Size),
					strconv.Itoa(p.Ready), strconv.Itoa(p.Starting), strconv.FormatUint(p.Claimed, 10), strconv.FormatUint(p.Missed, 10), note)
			}
			return t.flush()
		},
	}
}

// poolKeyFlags adds the flags that name a pool; empty ones take the
// daemon's defaults.
func poolKeyFlags(cmd *cobra.Command, k *api.PoolKey) {
	f := cmd.Flags()
	f.StringVarP(&k.Image, "image", "i", "", "image (default: the default image)")
	f.StringVar(&k.Backend, "backend", "", "backend (default: the daemon's)")
	f.StringVarP(&k.Profile, "profile", "p", "", "security profile (default: moderate)")
	f.IntVar(&k.MemoryMB, "memory-mb", 0, "memory limit in MiB (default: the daemon's)")
	f.IntVar(&k.VCPUs, "vcpus", 0, "vCPUs (default: the daemon's)")
	f.IntVar(&k.DiskMB, "disk-mb", 0, "disk size in MiB (default: the daemon's); a request takes a pooled sandbox only of its own disk size")
}

func newPoolSetCmd(app *App) *cobra.Command {
	var k api.PoolKey
	cmd := &cobra.Command{
		Use:   "set SIZE",
		Short: "Keep SIZE fresh sandboxes ready for a key (0 drains the pool)",
		Example: `  agentkernel pool set 4
  agentkernel pool set --backend microvm 2
  agentkernel pool set --image python:3.12 --memory-mb 1024 1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 0 || n > api.MaxPoolSize {
				return fmt.Errorf("size %q: want a number from 0 to %d", args[0], api.MaxPoolSize)
			}
			return setPool(cmd, app, k, n)
		},
	}
	poolKeyFlags(cmd, &k)
	return cmd
}

func newPoolDrainCmd(app *App) *cobra.Command {
	var k api.PoolKey
	cmd := &cobra.Command{
		Use:   "drain",
		Short: "Remove a pool's ready sandboxes and stop refilling it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return setPool(cmd, app, k, 0)
		},
	}
	poolKeyFlags(cmd, &k)
	return cmd
}

func setPool(cmd *cobra.Command, app *App, k api.PoolKey, size int) error {
	c, err := app.Connect(cmd.Context())
	if err != nil {
		return err
	}
	p, err := c.SetPool(cmd.Context(), api.SetPoolRequest{PoolKey: k, Size: size})
	if err != nil {
		return err
	}
	if app.JSON {
		return printJSON(cmd.OutOrStdout(), p)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "pool %s: size %d (%d ready, %d starting)\n", oneLine(p.PoolKey.String()), p.Size, p.Ready, p.Starting)
	return nil
}
