// Command agentkernel is the agentkernel CLI and, through roles added here,
// its daemon (`serve`) and per-sandbox supervisor (hidden `supervise`). The
// user commands live in internal/cli, which never imports the daemon.
//
// The daemon side is Linux-only (daemon_linux.go, serve.go); on macOS and
// other systems the binary is a client of a Linux daemon reached with --url
// or $AGENTKERNEL_BASE_URL, and the daemon's commands say so
// (daemon_other.go, clientonly.go).
package main

import (
	"context"
	"os"

	"github.com/agentkernel/agentkernel/internal/cli"
)

func main() {
	app := cli.NewApp()
	app.Connect = connect(app)
	root := cli.NewRootCmd(app)
	root.AddCommand(daemonCommands()...)
	os.Exit(cli.Execute(context.Background(), root))
}
