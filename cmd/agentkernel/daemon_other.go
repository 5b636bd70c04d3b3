//go:build !linux || clientonly

package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/cli"
	"github.com/agentkernel/agentkernel/internal/paths"
)

// Off Linux (macOS) the binary is a client of a Linux daemon: the daemon's
// roles are stand-ins that say so (clientonly.go), and no daemon is started
// on demand. The tag clientonly builds the same on Linux, so that tests can
// run it.

// clientOnly: this build has no daemon side.
const clientOnly = true

// daemonCommands are the stand-ins main adds for the daemon's roles.
func daemonCommands() []*cobra.Command { return clientDaemonCommands() }

func init() { cli.SetupFunc = clientSetup }

// ensureLocalDaemon is reached when no daemon address was given.
func ensureLocalDaemon(context.Context, paths.Layout) error { return noLocalDaemon() }
