//go:build linux && !clientonly

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
	var apiKeys []string
	var apiKeyFile string
	var pools, webhooks []string
	var webhookSecret, metricsAddr string
	var metricsPublic, tlsSelfSigned, requireTLS bool
	var tlsCert, tlsKey, otelEndpoint string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: the HTTP API on a Unix socket and on 127.0.0.1:18888",
		Long: `Run the agentkernel daemon in the foreground.

It serves the HTTP API on a Unix socket (0600) under $AGENTKERNEL_HOME/run and,
unless --no-tcp, on TCP (default 127.0.0.1:18888). TCP requires a bearer token
(or X-API-Key): the keys given with --api-key, --api-key-file or
$AGENTKERNEL_API_KEY, else a random one generated at first start into
$AGENTKERNEL_HOME/token (0600). Listening beyond loopback needs a key given
so: the generated file is for local clients.
Sandboxes keep running when the daemon stops; the next daemon re-adopts them.
The CLI starts a daemon (without TCP) by itself when none is running.

Warm pools keep fresh sandboxes started, so that a create or run that matches
one is ready in milliseconds; each is used once and removed after use. By
default a pool of 2 serves the default image and profile on the container
backend ([pools] default_size in daemon.toml, or AGENTKERNEL_DEFAULT_POOL_SIZE;
0 disables it). --pool KEY=N adds one: KEY is an image ("python:3.12=2") or
fields ("backend=microvm,image=host,profile=moderate,memory_mb=1024=1").`,
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
			cfg := daemon.Config{Layout: l, Exe: exe, Logger: newLogger(), Pools: pools,
				WebhookURLs: webhooks, WebhookSecret: webhookSecret, MetricsAddr: metricsAddr, MetricsPublic: metricsPublic,
				OTelEndpoint: otelEndpoint}
			if !noTCP {
				ip := net.ParseIP(host)
				if ip == nil {
					return fmt.Errorf("--host %q: not an IP address", host)
				}
				keys, err := serveKeys(apiKeys, apiKeyFile)
				if err != nil {
					return err
				}
				if !ip.IsLoopback() && len(keys) == 0 {
					return fmt.Errorf("--host %s: listening beyond loopback needs an API key (--api-key, --api-key-file or AGENTKERNEL_API_KEY), so that the address is not guarded only by a token file on this host", host)
				}
				cfg.TCPAddr = net.JoinHostPort(host, strconv.Itoa(port))
				cfg.APIKeys = keys
				cfg.TLSCert, cfg.TLSKey, cfg.TLSSelfSigned, cfg.RequireTLS = tlsCert, tlsKey, tlsSelfSigned, requireTLS
			} else if requireTLS || tlsSelfSigned || tlsCert != "" {
				return fmt.Errorf("--no-tcp: TLS applies to the TCP listener only")
			}
			return daemon.Run(ctx, cfg)
		},
	}
	cmd.Flags().StringVarP(&host, "host", "H", "127.0.0.1", "TCP address to listen on")
	cmd.Flags().StringArrayVar(&apiKeys, "api-key", nil, "a bearer token TCP clients may use (repeatable; default: $AGENTKERNEL_API_KEY, else the generated token file)")
	cmd.Flags().StringVar(&apiKeyFile, "api-key-file", "", "a file of API keys, one per line")
	cmd.Flags().IntVarP(&port, "port", "p", 18888, "TCP port to listen on")
	cmd.Flags().BoolVar(&noTCP, "no-tcp", false, "serve only the Unix socket")
	cmd.Flags().StringArrayVar(&webhooks, "webhook-url", nil, "POST every sandbox event to this URL, signed (X-Agentkernel-Signature: t=…,v1=HMAC-SHA256), retried, dead-lettered under $AGENTKERNEL_HOME/webhooks (repeatable)")
	cmd.Flags().StringVar(&webhookSecret, "webhook-secret", daemon.DefaultWebhookSecret, "the vault secret webhooks are signed with (agentkernel secret set NAME)")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "serve TCP with TLS: the certificate (PEM; with --tls-key)")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "the key of --tls-cert (PEM)")
	cmd.Flags().BoolVar(&tlsSelfSigned, "tls", false, "serve TCP with TLS, with a certificate generated once into $AGENTKERNEL_HOME/tls/cert.pem (clients: --cacert that file)")
	cmd.Flags().BoolVar(&requireTLS, "require-tls", false, "refuse to serve TCP without TLS")
	cmd.Flags().StringVar(&metricsAddr, "metrics-addr", "", "also serve GET /metrics alone on this loopback `ADDR` (127.0.0.1:PORT), for scrapers")
	cmd.Flags().BoolVar(&metricsPublic, "metrics-public", false, "serve GET /metrics over TCP without the API key")
	cmd.Flags().StringVar(&otelEndpoint, "otel-endpoint", "", "export OpenTelemetry traces (OTLP over HTTP) to this `URL`, e.g. http://127.0.0.1:4318 (default: daemon.toml's [telemetry] otel_endpoint, else $OTEL_EXPORTER_OTLP_ENDPOINT; none: tracing off)")
	cmd.Flags().StringArrayVar(&pools, "pool", nil, "keep a warm pool: KEY=N, KEY an image or backend=,image=,profile=,memory_mb=,vcpus= fields (repeatable)")
	return cmd
}

// minAPIKeyLen is the shortest API key serve accepts.
const minAPIKeyLen = 16

// serveKeys gathers the API keys from the flags, the key file and
// $AGENTKERNEL_API_KEY; each must be at least minAPIKeyLen bytes.
func serveKeys(flags []string, file string) ([]string, error) {
	keys := append([]string(nil), flags...)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--api-key-file: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k := strings.TrimSpace(line); k != "" && !strings.HasPrefix(k, "#") {
				keys = append(keys, k)
			}
		}
	}
	if env := os.Getenv("AGENTKERNEL_API_KEY"); env != "" && len(flags) == 0 && file == "" {
		keys = append(keys, env)
	}
	for i, k := range keys {
		if len(k) < minAPIKeyLen || strings.ContainsAny(k, " \t\r\n") {
			return nil, fmt.Errorf("API key %d: want at least %d characters without spaces", i+1, minAPIKeyLen)
		}
	}
	return keys, nil
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
