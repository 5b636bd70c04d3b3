//go:build linux && !clientonly

package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/cli"
	"github.com/agentkernel/agentkernel/internal/daemon"
	"github.com/agentkernel/agentkernel/internal/daemonctl"
	"github.com/agentkernel/agentkernel/internal/paths"
)

// The daemon side of the binary, Linux-only: the serve and supervise roles,
// setup's host preparation and starting a local daemon on demand. Off
// Linux, daemon_other.go stands in and the binary is a client only.

// clientOnly: this build has the daemon side.
const clientOnly = false

// daemonCommands are the roles main adds to the CLI's command tree.
func daemonCommands() []*cobra.Command {
	return []*cobra.Command{newServeCmd(), newSuperviseCmd()}
}

// The CLI's `setup` runs locally through the daemon package, which the CLI
// itself may not import.
func init() {
	cli.SetupFunc = func(ctx context.Context, skipDisk bool, logf func(string, ...any)) error {
		return daemon.Setup(ctx, daemon.SetupOptions{SkipDisk: skipDisk, Logf: logf})
	}
}

// ensureLocalDaemon starts the local daemon (this executable's serve) when
// none answers on l's socket.
func ensureLocalDaemon(ctx context.Context, l paths.Layout) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return daemonctl.EnsureRunning(ctx, l, exe)
}
