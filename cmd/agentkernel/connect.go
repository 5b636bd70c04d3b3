package main

import (
	"context"
	"os"
	"strings"

	"github.com/agentkernel/agentkernel/internal/cli"
	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// connect returns the CLI's Connect: with no address given (no --url,
// --socket or $AGENTKERNEL_BASE_URL) it starts the local daemon when none
// answers (on Linux; a client-only build says that an address is needed).
// For a TCP address without $AGENTKERNEL_API_KEY it sends the token the
// local daemon generated.
func connect(app *cli.App) func(ctx context.Context) (*client.Client, error) {
	return func(ctx context.Context) (*client.Client, error) {
		explicit := app.URL != "" || app.Socket != "" || os.Getenv("AGENTKERNEL_BASE_URL") != ""
		l, err := paths.Default()
		if err != nil {
			return nil, err
		}
		if !explicit {
			if err := ensureLocalDaemon(ctx, l); err != nil {
				return nil, err
			}
		}
		u, err := app.BaseURL()
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(u, "http") && os.Getenv("AGENTKERNEL_API_KEY") == "" {
			if b, err := os.ReadFile(l.TokenFile()); err == nil {
				return client.New(client.WithBaseURL(u), client.WithToken(strings.TrimSpace(string(b))))
			}
		}
		return app.DialDefault(ctx)
	}
}
