package main

import (
	"context"

	"github.com/agentkernel/agentkernel/internal/cli"
	"github.com/agentkernel/agentkernel/internal/daemon"
)

// The CLI's `setup` runs locally through the daemon package, which the CLI
// itself may not import.
func init() {
	cli.SetupFunc = func(ctx context.Context, skipDisk bool, logf func(string, ...any)) error {
		return daemon.Setup(ctx, daemon.SetupOptions{SkipDisk: skipDisk, Logf: logf})
	}
}
