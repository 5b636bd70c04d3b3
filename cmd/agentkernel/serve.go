package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/daemon"
	"github.com/agentkernel/agentkernel/internal/paths"
)

func newServeCmd() *cobra.Command {
	var host string
	var port int
	var noTCP bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: the HTTP API on a Unix socket and on 127.0.0.1:18888",
		Long: `Run the agentkernel daemon in the foreground.

It serves the HTTP API on a Unix socket (0600) under $AGENTKERNEL_HOME/run and,
unless --no-tcp, on TCP (default 127.0.0.1:18888). TCP requires a bearer token:
a random one is generated at first start into $AGENTKERNEL_HOME/token (0600).
Sandboxes keep running when the daemon stops; the next daemon re-adopts them.
The CLI starts a daemon (without TCP) by itself when none is running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := paths.Default()
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			cfg := daemon.Config{Layout: l, Exe: exe, Logger: newLogger()}
			if !noTCP {
				if ip := net.ParseIP(host); ip == nil {
					return fmt.Errorf("--host %q: not an IP address", host)
				}
				cfg.TCPAddr = net.JoinHostPort(host, strconv.Itoa(port))
			}
			return daemon.Run(ctx, cfg)
		},
	}
	cmd.Flags().StringVar(&host, "host", "127.0.0.1", "TCP address to listen on")
	cmd.Flags().IntVarP(&port, "port", "p", 18888, "TCP port to listen on")
	cmd.Flags().BoolVar(&noTCP, "no-tcp", false, "serve only the Unix socket")
	return cmd
}

// newSuperviseCmd is the hidden per-sandbox supervisor role, started by the
// daemon with the ready pipe as fd 3.
func newSuperviseCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "supervise DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// SIGTERM stops the sandbox gracefully; SIGINT from a terminal
			// is ignored: supervisors run in their own session anyway.
			signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
			defer stop()
			return daemon.Supervise(ctx, args[0], os.NewFile(3, "ready"), newLogger())
		},
	}
}

// newLogger logs to stderr at $AGENTKERNEL_LOG's level (debug, info, warn,
// error; default info).
func newLogger() *slog.Logger {
	var level slog.Level
	switch strings.ToLower(os.Getenv("AGENTKERNEL_LOG")) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
