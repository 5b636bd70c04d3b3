// Package daemon wires agentkernel's daemon (`agentkernel serve`): the
// store, the image store, the backends and the sandbox manager behind the
// HTTP API on a 0600 Unix socket and, optionally, on TCP with a bearer token.
// It parents no sandbox: each runs under its own supervisor process, which
// a restarted daemon re-adopts.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/agentkernel/agentkernel/internal/audit"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/daemonconf"
	"github.com/agentkernel/agentkernel/internal/events"
	"github.com/agentkernel/agentkernel/internal/httpapi"
	"github.com/agentkernel/agentkernel/internal/image/build"
	akmcp "github.com/agentkernel/agentkernel/internal/mcp"
	"github.com/agentkernel/agentkernel/internal/metrics"
	"github.com/agentkernel/agentkernel/internal/opencodeproxy"
	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/internal/pool"
	"github.com/agentkernel/agentkernel/internal/receipt"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/internal/secrets"
	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/internal/telemetry"
	"github.com/agentkernel/agentkernel/internal/volume"
	"github.com/agentkernel/agentkernel/internal/webhook"
	pkgapi "github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// DefaultTCPAddr is upstream agentkernel's port, on loopback only.
const DefaultTCPAddr = "127.0.0.1:18888"

// mcpMaxSandboxes is the most sandboxes one session of /mcp may hold.
const mcpMaxSandboxes = 10

// shutdownTimeout bounds the wait for in-flight requests at exit.
const shutdownTimeout = 5 * time.Second

// Config configures Run.
type Config struct {
	Layout paths.Layout
	// TCPAddr, when not empty, also serves the API there, token required.
	TCPAddr string
	// APIKeys are the tokens TCP accepts (serve --api-key); empty means
	// the one generated into the home's token file.
	APIKeys []string
	// Exe is this binary, run as `Exe supervise DIR` for each sandbox.
	Exe string
	// AgentPath is the guest agent binary; found next to Exe if empty.
	AgentPath string
	// Pools are serve's --pool KEY=N flags, added to daemon.toml's.
	Pools []string
	// WebhookURLs receive every event, signed with the vault secret
	// named WebhookSecret.
	WebhookURLs   []string
	WebhookSecret string
	// TLSCert and TLSKey serve TCP with TLS; TLSSelfSigned with a
	// certificate generated once under the home (SelfSignedCertFile).
	// RequireTLS refuses to serve TCP without one of them.
	TLSCert, TLSKey string
	TLSSelfSigned   bool
	RequireTLS      bool
	// MetricsPublic serves GET /metrics without the token; MetricsAddr,
	// when set, also serves it alone on that loopback address.
	MetricsPublic bool
	MetricsAddr   string
	// OTelEndpoint, when set, exports traces there (OTLP over HTTP, e.g.
	// http://127.0.0.1:4318); the supervisors started get it too. Empty
	// falls back to daemon.toml's [telemetry] otel_endpoint, then to
	// $OTEL_EXPORTER_OTLP_ENDPOINT.
	OTelEndpoint string
	Logger       *slog.Logger
}

// loopbackHosts are the Host headers a loopback listener at addr serves
// (the DNS-rebinding guard, httpapi.HandlerOptions.AllowedHosts); nil for
// a listener beyond loopback, which any name may reach.
func loopbackHosts(addr net.Addr) []string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return nil
	}
	port := strconv.Itoa(ta.Port)
	return []string{net.JoinHostPort(ta.IP.String(), port), "localhost:" + port, "[::1]:" + port, "127.0.0.1:" + port}
}

// Run serves until ctx is cancelled. Only one daemon runs per home: a
// second one fails at once, naming the first.
func Run(ctx context.Context, cfg Config) (retErr error) {
	log := cfg.Logger
	l := cfg.Layout
	if err := l.EnsureDirs(); err != nil {
		return err
	}
	unlock, err := lockHome(l)
	if err != nil {
		return err
	}
	defer unlock()

	agentPath, err := findAgent(cfg.AgentPath, cfg.Exe)
	if err != nil {
		return err
	}
	st, err := store.Open(l.Database())
	if err != nil {
		return err
	}
	defer st.Close()

	host, err := newHostRuntime(l, log)
	if err != nil {
		return err
	}
	// Supervisors read it at each start; a broken one stops us now.
	netConf, err := supervisor.LoadNetworkConfig(l.Home)
	if err != nil {
		return err
	}
	dconf, err := daemonconf.Load(l.Home)
	if err != nil {
		return err
	}
	// The flag, else daemon.toml, else $OTEL_EXPORTER_OTLP_ENDPOINT.
	otelEndpoint := cfg.OTelEndpoint
	if otelEndpoint == "" {
		otelEndpoint = telemetry.Resolve(dconf.Telemetry.OTelEndpoint)
	}
	shutdownTracing, err := telemetry.Setup(ctx, otelEndpoint, "agentkernel")
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer shutdownTracing(context.WithoutCancel(ctx))
	hostPaths, err := dconf.API.ResolvedHostPaths()
	if err != nil {
		return fmt.Errorf("%s: %w", daemonconf.Path(l.Home), err)
	}
	pausedTTLStops, err := dconf.Lifecycle.PausedTTLStops()
	if err != nil {
		return fmt.Errorf("%s: %w", daemonconf.Path(l.Home), err)
	}
	vault, err := secrets.Open(filepath.Join(l.Home, "secrets"))
	if err != nil {
		return err
	}
	// The global audit log; the home lock makes this daemon its only
	// writer. AGENTKERNEL_AUDIT=0 (upstream's switch) turns it off.
	var auditLog *audit.Writer
	if auditOff(os.Getenv("AGENTKERNEL_AUDIT")) {
		log.Warn("the audit log is off (AGENTKERNEL_AUDIT): execs and file writes are not recorded")
	} else {
		if auditLog, err = audit.Open(l.AuditLog(), audit.Options{}); err != nil {
			return err
		}
		defer auditLog.Close()
	}
	broker := events.NewBroker()
	var pools *pool.Pools // set below; the metrics read it when scraped
	var mgr *sandbox.Manager
	mtr := metrics.New(metrics.Sources{
		Sandboxes:      func(ctx context.Context) ([]pkgapi.SandboxInfo, error) { return mgr.ListSandboxes(ctx) },
		ImageBlobBytes: host.images.BlobBytes,
		Gateways:       func(ctx context.Context) supervisor.GatewayCounters { return mgr.GatewayTotals(ctx) },
		Pools: func() []pkgapi.PoolInfo {
			if pools == nil {
				return nil
			}
			return pools.List()
		},
		Followers: broker.Subscribers,
	})
	mgr = sandbox.NewManager(sandbox.Config{
		Layout: l, Store: st, Images: imageService{host.images}, Backends: host.backends(), DefaultBackend: "container",
		AgentPath: agentPath, SupervisorExe: cfg.Exe, SupervisorArgs: []string{"supervise"},
		SupervisorEnv: supervisorEnv(l, otelEndpoint), Secrets: vault,
		Doctor: func(ctx context.Context) []pkgapi.DoctorCheck {
			return append(host.doctor(ctx), agentCheck(agentPath), networkCheck(l.Home))
		},
		Logger:         log,
		SandboxCAs:     len(netConf.SandboxCAs) > 0,
		PausedTTLStops: pausedTTLStops,
		Events:         broker,
		Observer:       mtr,
		Audit:          auditLog,
		Volumes:        &volume.Store{Dir: l.VolumesDir()},
	})
	defer mgr.Close()
	if err := mgr.Recover(ctx); err != nil {
		return fmt.Errorf("recovering sandboxes: %w", err)
	}
	pools, err = startPools(ctx, mgr, dconf.Pools, cfg.Pools, log)
	if err != nil {
		return fmt.Errorf("%s: %w", daemonconf.Path(l.Home), err)
	}
	// Closed before mgr (defers run last first): no refill outlives it.
	defer pools.Close()
	mgr.SetPools(pools)

	bld := build.New(build.Options{Home: l.Home, Images: host.images, Sandboxes: mgr, Logger: log})
	receiptKey, err := receipt.LoadOrCreateKey(ReceiptsDir(l))
	if err != nil {
		return fmt.Errorf("the receipt signing key: %w", err)
	}
	svc := service{Manager: mgr, Builder: bld, poolService: poolService{pools}, eventService: eventService{broker}, metrics: mtr}
	svc.receipts = receipt.Issuer{Key: receiptKey, Facts: svc}
	if len(cfg.WebhookURLs) > 0 {
		hooks, err := startWebhooks(ctx, l, vault, svc, cfg.WebhookURLs, cfg.WebhookSecret, log)
		if err != nil {
			return err
		}
		defer hooks.Close()
	}
	// The /opencode proxy's key outlives the daemon, so that a restarted
	// one re-adopts the running OpenCode sandbox.
	ocKey, err := loadOrCreateToken(filepath.Join(l.Home, "opencode.key"))
	if err != nil {
		return err
	}
	openCode := opencodeproxy.New(opencodeproxy.Options{Sandboxes: mgr, Secret: []byte(ocKey), Logger: log})
	defer openCode.Close()

	os.Remove(l.Socket())
	unixLn, err := net.Listen("unix", l.Socket())
	if err != nil {
		return err
	}
	if err := os.Chmod(l.Socket(), 0o600); err != nil {
		unixLn.Close()
		return err
	}
	defer os.Remove(l.Socket())
	// No ReadTimeout or WriteTimeout: event streams (SSE, /opencode) last.
	// /mcp's tools go through the API like any client's, over the socket.
	self, err := client.New(client.WithBaseURL("unix://" + l.Socket()))
	if err != nil {
		unixLn.Close()
		return err
	}
	mcpPolicy := akmcp.Policy{MaxSandboxes: mcpMaxSandboxes}.WithConfig(dconf.MCP)
	if err := mcpPolicy.Check(); err != nil {
		unixLn.Close()
		return fmt.Errorf("%s: [mcp]: %w", daemonconf.Path(l.Home), err)
	}
	mcpHandler := akmcp.HTTPHandler(self, mcpPolicy)
	servers := []*http.Server{httpapi.NewServer(httpapi.NewHandler(svc, httpapi.HandlerOptions{Logger: log, OpenCode: openCode, MCP: mcpHandler}))}
	listeners := []net.Listener{unixLn}
	keys := cfg.APIKeys
	if len(keys) == 0 && (cfg.TCPAddr != "" || cfg.MetricsAddr != "") {
		tok, err := loadOrCreateToken(l.TokenFile())
		if err != nil {
			unixLn.Close()
			return err
		}
		keys = []string{tok}
	}
	if cfg.MetricsAddr != "" {
		mln, err := listenLoopback(cfg.MetricsAddr)
		if err != nil {
			unixLn.Close()
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		h := httpapi.NewHandler(svc, httpapi.HandlerOptions{Token: keys[0], MoreTokens: keys[1:], MetricsPublic: cfg.MetricsPublic, Logger: log})
		servers = append(servers, httpapi.NewServer(httpapi.OnlyMetrics(h)))
		listeners = append(listeners, mln)
		log.Info("serving /metrics", "addr", mln.Addr().String(), "public", cfg.MetricsPublic)
	}
	if cfg.TCPAddr != "" {
		tlsConf, err := tcpTLS(l, cfg)
		if err != nil {
			unixLn.Close()
			return err
		}
		tcpLn, err := net.Listen("tcp", cfg.TCPAddr)
		if err != nil {
			unixLn.Close()
			return fmt.Errorf("listening on %s: %w", cfg.TCPAddr, err)
		}
		if tlsConf != nil {
			tcpLn = tls.NewListener(tcpLn, tlsConf)
			log.Info("TCP is served with TLS", "self_signed", cfg.TLSSelfSigned)
		}
		servers = append(servers, httpapi.NewServer(httpapi.NewHandler(svc, httpapi.HandlerOptions{Token: keys[0], MoreTokens: keys[1:], AllowedHosts: loopbackHosts(tcpLn.Addr()), HostPaths: hostPaths, Logger: log, OpenCode: openCode, MCP: mcpHandler, MetricsPublic: cfg.MetricsPublic})))
		listeners = append(listeners, tcpLn)
		if len(cfg.APIKeys) > 0 {
			// Never the keys themselves.
			log.Info("serving on TCP (bearer token required)", "addr", tcpLn.Addr().String(), "api_keys", len(cfg.APIKeys))
		} else {
			log.Info("serving on TCP (bearer token required)", "addr", tcpLn.Addr().String(), "token_file", l.TokenFile())
		}
	}
	log.Info("daemon ready", "socket", l.Socket(), "pid", os.Getpid())

	errc := make(chan error, len(servers))
	var wg sync.WaitGroup
	for i := range servers {
		wg.Add(1)
		go func(s *http.Server, ln net.Listener) {
			defer wg.Done()
			if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}(servers[i], listeners[i])
	}
	select {
	case <-ctx.Done():
	case retErr = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	wg.Wait()
	log.Info("daemon stopped; sandboxes keep running under their supervisors")
	return retErr
}

// service is what the API serves: the sandbox manager, plus image builds,
// commits and exports, which need the image store the daemon owns.
type service struct {
	*sandbox.Manager
	*build.Builder
	poolService
	eventService
	metrics  *metrics.Metrics
	receipts receipt.Issuer
}

// IssueReceipt signs a receipt of a command that ran (exec --receipt).
func (s service) IssueReceipt(ctx context.Context, run receipt.Run) (*pkgapi.SignedReceipt, error) {
	return s.receipts.Issue(ctx, run)
}

// ReceiptsDir holds the daemon's receipt signing key and its public half
// (receipt.PublicFile), which `receipt verify` trusts by default.
func ReceiptsDir(l paths.Layout) string { return filepath.Join(l.Home, "receipts") }

// MetricsHandler serves the daemon's Prometheus registry (GET /metrics).
func (s service) MetricsHandler() http.Handler { return s.metrics.Handler() }

// startWebhooks starts delivering events to urls, signed with the vault's
// secret called secretName; the daemon refuses to start without it.
func startWebhooks(ctx context.Context, l paths.Layout, vault *secrets.Vault, src webhook.Source, urls []string, secretName string, log *slog.Logger) (*webhook.Deliverers, error) {
	if secretName == "" {
		secretName = DefaultWebhookSecret
	}
	key, err := vault.Get(secretName)
	if err != nil {
		return nil, fmt.Errorf("--webhook-url: the signing secret %s is not in the vault (%v); set one of at least 16 characters with: agentkernel secret set %s", secretName, err, secretName)
	}
	return webhook.Start(ctx, webhook.Config{URLs: urls, Secret: []byte(key), Source: src,
		Dir: filepath.Join(l.Home, "webhooks"), Logger: log})
}

// tcpTLS is the TLS configuration of the TCP listener, nil for plain TCP.
func tcpTLS(l paths.Layout, cfg Config) (*tls.Config, error) {
	switch {
	case (cfg.TLSCert == "") != (cfg.TLSKey == ""):
		return nil, errors.New("--tls-cert and --tls-key go together")
	case cfg.TLSSelfSigned && cfg.TLSCert != "":
		return nil, errors.New("--tls generates its own certificate: give it or --tls-cert/--tls-key, not both")
	case cfg.TLSCert == "" && !cfg.TLSSelfSigned:
		if cfg.RequireTLS {
			return nil, errors.New("--require-tls: TCP would be plain; give --tls-cert and --tls-key, or --tls")
		}
		return nil, nil
	}
	host, _, _ := net.SplitHostPort(cfg.TCPAddr)
	return tlsConfig(l, cfg.TLSCert, cfg.TLSKey, cfg.TLSSelfSigned, host)
}

// listenLoopback listens on addr, which must be a loopback IP and port.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%s: metrics are served on a loopback address only (127.0.0.1:PORT)", addr)
	}
	return net.Listen("tcp", addr)
}

// DefaultWebhookSecret names the vault secret webhooks are signed with.
const DefaultWebhookSecret = "WEBHOOK_SECRET"

// eventService gives the HTTP API live events from the broker the
// Manager publishes to (the history is the Manager's).
type eventService struct{ b *events.Broker }

func (e eventService) SubscribeEvents(buffer int) (<-chan pkgapi.Event, func()) {
	return e.b.Subscribe(buffer)
}

var (
	_ httpapi.Service          = service{}
	_ httpapi.ImageBuilder     = service{}
	_ httpapi.SandboxCommitter = service{}
	_ httpapi.SandboxExporter  = service{}
	_ httpapi.PoolManager      = service{}
	_ httpapi.EventSource      = service{}
	_ httpapi.MetricsSource    = service{}
	_ httpapi.ReceiptIssuer    = service{}
	_ pool.Sandboxes           = (*sandbox.Manager)(nil)
	_ sandbox.WarmPools        = (*pool.Pools)(nil)
	_ build.Sandboxes          = (*sandbox.Manager)(nil)
	_ opencodeproxy.Sandboxes  = (*sandbox.Manager)(nil)
)

// lockHome takes an exclusive lock so that one daemon serves a home, and
// records the pid.
func lockHome(l paths.Layout) (func(), error) {
	f, err := os.OpenFile(l.PIDFile(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(l.PIDFile())
		f.Close()
		return nil, fmt.Errorf("another agentkernel daemon (pid %s) serves %s", string(b), l.Home)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())), 0)
	return func() { f.Close() }, nil
}

// supervisorEnv is the whole environment a supervisor gets: enough to find
// the runtime binaries, nothing else of the daemon's.
func supervisorEnv(l paths.Layout, otelEndpoint string) []string {
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"AGENTKERNEL_HOME=" + l.Home,
	}
	if v := os.Getenv("AGENTKERNEL_LOG"); v != "" {
		env = append(env, "AGENTKERNEL_LOG="+v)
	}
	if otelEndpoint != "" {
		env = append(env, telemetry.SupervisorEndpointEnv+"="+otelEndpoint)
	}
	return env
}

// auditOff reports whether AGENTKERNEL_AUDIT's value turns the audit log
// off: "0" or "false", as upstream reads it.
func auditOff(v string) bool {
	return v == "0" || strings.EqualFold(v, "false")
}
