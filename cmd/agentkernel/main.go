// Command agentkernel is the agentkernel CLI and, through roles added here,
// its daemon (`serve`) and per-sandbox supervisor (hidden `supervise`). The
// user commands live in internal/cli, which never imports the daemon.
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
	root.AddCommand(newServeCmd(), newSuperviseCmd())
	os.Exit(cli.Execute(context.Background(), root))
}
