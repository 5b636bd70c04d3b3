package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
)

// What a client-only build (macOS, or Linux with the tag clientonly) puts
// where the daemon's side would be. This file is compiled into every build
// so that its tests run on Linux; only daemon_other.go uses it.

// daemonLinuxOnly is the answer of every daemon-side command in a
// client-only build.
const daemonLinuxOnly = "the agentkernel daemon runs only on Linux; point this client at one with --url or AGENTKERNEL_BASE_URL"

// remoteHint follows daemonLinuxOnly: what reaching a remote daemon takes.
const remoteHint = "(e.g. --url http://HOST:18888 with AGENTKERNEL_API_KEY=KEY, the daemon started there with 'agentkernel serve --host ADDR --api-key KEY'; https:// when it serves TLS)"

// daemonRefusal is the error of the daemon-side command what (cli.Execute
// prefixes "agentkernel: ").
func daemonRefusal(what string) error {
	return fmt.Errorf("%s: %s %s", what, daemonLinuxOnly, remoteHint)
}

// clientDaemonCommands are stand-ins for the daemon's roles (serve, and the
// hidden supervise) that refuse with daemonRefusal. They take any flag, so
// that `serve --api-key K` gets this answer rather than a flag error.
func clientDaemonCommands() []*cobra.Command {
	stub := func(use, short string, hidden bool) *cobra.Command {
		return &cobra.Command{
			Use:                use,
			Short:              short,
			Long:               "This build is a client: " + daemonLinuxOnly + "\n" + remoteHint + ".",
			Hidden:             hidden,
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				if slices.Contains(args, "--help") || slices.Contains(args, "-h") {
					return cmd.Help()
				}
				return daemonRefusal(cmd.Name())
			},
		}
	}
	return []*cobra.Command{
		stub("serve", "Run the daemon (Linux only; this build is a client)", false),
		stub("supervise DIR", "", true),
	}
}

// clientSetup is cli.SetupFunc in a client-only build: setup without
// --agents prepares the daemon's host. setup --agents asks the daemon and
// does not come here.
func clientSetup(context.Context, bool, func(string, ...any)) error {
	return fmt.Errorf("%w; setup --agents works from here, through the daemon", daemonRefusal("setup"))
}

// noLocalDaemon is the error of a command that needs the daemon when no
// address was given: a client-only build has no local daemon to start.
func noLocalDaemon() error {
	return daemonRefusal("no daemon address given")
}
