package supervisor

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/internal/netgw"
	"github.com/agentkernel/agentkernel/internal/netgw/mitm"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/internal/telemetry"
	"github.com/agentkernel/agentkernel/pkg/errdefs"

	"github.com/agentkernel/agentkernel/internal/backend"
)

// DefaultMTU is the MTU of the link between a sandbox and its gateway: the
// link is virtual and every flow ends at the gateway, so a large MTU only
// saves work (bulk transfers run several times faster than at 1500).
const DefaultMTU = 65000

// NetworkConfig is the host-wide part of every sandbox's gateway; the
// daemon reads it from the [network] section of daemon.toml. Zero values
// take the documented defaults.
type NetworkConfig struct {
	// Resolvers are the upstream DNS servers; nil means the host's
	// /etc/resolv.conf.
	Resolvers []netip.AddrPort
	// Forbidden replaces the ranges no sandbox may reach (nil means
	// netgw.DefaultForbidden: loopback, private, link-local, metadata,
	// the host's addresses). Tests use it; production should not.
	Forbidden []netip.Prefix
	// MTU of the sandbox's link; default DefaultMTU.
	MTU uint32
	// UpstreamRoots verify the servers of hosts the gateway intercepts
	// to inject secrets; nil means the host's roots.
	UpstreamRoots *x509.CertPool
	// SandboxCAs are extra PEM certificates the sandbox trusts (a
	// TLS-inspecting proxy's), handed to the backend with the sandbox's
	// own CA.
	SandboxCAs []byte
}

// NetworkSpec is one sandbox's gateway as Run builds it.
type NetworkSpec struct {
	// Sandbox names the sandbox in audit events.
	Sandbox string
	// Policy is the initial egress policy.
	Policy policy.Policy
	// Secrets are the bindings with their values (Value is the complete
	// header value).
	Secrets []mitm.Binding
	// Publish lists host loopback ports forwarded to the sandbox.
	Publish []Port
	Config  NetworkConfig
	// InterceptionCA creates the interception CA even without Secrets
	// (see backend.GatewaySpec.InterceptionCA).
	InterceptionCA bool
}

// Port publishes Sandbox on 127.0.0.1:Host (Host 0: any free port).
type Port struct {
	Host    uint16 `json:"host_port"`
	Sandbox uint16 `json:"sandbox_port"`
}

// PublishedPort is a Port being served at Addr.
type PublishedPort struct {
	Port
	Addr string `json:"address"`
}

// NetworkStatus is what GET /network on ctl.sock reports.
type NetworkStatus struct {
	Policy       policy.Policy   `json:"policy"`
	Published    []PublishedPort `json:"published,omitempty"`
	Stats        netgw.Stats     `json:"stats"`
	AuditDropped int64           `json:"audit_dropped"`
}

// Network is a sandbox's gateway and what it holds on the host: the
// gateway, its audit log, published ports and, once a backend asks, the
// sandbox's network namespace. Run creates it before the backend's Start
// and closes it after the sandbox is released. Its methods are safe for
// concurrent use.
type Network struct {
	gw        *netgw.Gateway
	audit     *auditLog // not owned: Run opens it before and closes it after the Network
	ca        []byte
	published []PublishedPort
	log       *slog.Logger
	traces    execTraces // the execs in progress, for the flows' spans
	counters  gatewayCounters

	// mu guards the fields below.
	mu       sync.Mutex
	ns       *os.File // the sandbox's netns, once Netns was called
	nsPath   string
	attached bool // Netns or AttachStream was used
	closed   bool
}

// newNetwork builds the gateway of the sandbox whose state directory is
// dir. A policy the daemon saved in PolicyFile replaces spec.Policy.
func newNetwork(dir string, spec NetworkSpec, audit *auditLog, log *slog.Logger) (_ *Network, retErr error) {
	pol := spec.Policy
	if b, err := os.ReadFile(filepath.Join(dir, PolicyFile)); err == nil {
		if err := json.Unmarshal(b, &pol); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errdefs.ErrFailedPrecondition, PolicyFile, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	cfg := spec.Config
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.Resolvers == nil {
		up, err := netgw.HostResolvers()
		if err != nil {
			return nil, fmt.Errorf("%w (or set resolvers in daemon.toml's [network])", err)
		}
		cfg.Resolvers = up
	}
	n := &Network{audit: audit, log: log}
	var err error
	defer func() {
		if retErr != nil {
			n.Close()
		}
	}()
	var ca *mitm.CA
	if len(spec.Secrets) > 0 || spec.InterceptionCA {
		if ca, err = mitm.NewCA("agentkernel sandbox " + spec.Sandbox); err != nil {
			return nil, fmt.Errorf("creating the sandbox's CA: %w", err)
		}
		n.ca = ca.CertPEM()
	}
	if len(cfg.SandboxCAs) > 0 {
		n.ca = append(append(n.ca, '\n'), cfg.SandboxCAs...)
	}
	var traceFlow func(netgw.Event, []byte) (string, string, func(netgw.Event))
	if telemetry.Enabled() {
		traceFlow = n.traces.flowSpan
	}
	n.gw, err = netgw.New(netgw.Config{
		Sandbox: spec.Sandbox, MTU: cfg.MTU, Policy: pol,
		Upstreams: cfg.Resolvers, Forbidden: cfg.Forbidden,
		Secrets: spec.Secrets, CA: ca, UpstreamRoots: cfg.UpstreamRoots,
		Audit: audit.emitNet, Observe: n.counters.observe, Trace: traceFlow, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	for _, p := range spec.Publish {
		addr, _, err := n.gw.Publish(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), p.Host), p.Sandbox)
		if err != nil {
			return nil, fmt.Errorf("publishing %d:%d: %w", p.Host, p.Sandbox, err)
		}
		n.published = append(n.published, PublishedPort{Port: p, Addr: addr.String()})
	}
	return n, nil
}

// Link returns the link parameters the sandbox side must use.
func (n *Network) Link() netgw.Network { return n.gw.Network() }

// GatewayMAC returns the gateway's ethernet address.
func (n *Network) GatewayMAC() net.HardwareAddr { return netgw.DefaultMAC }

// CACert returns the PEM certificates the sandbox must trust: its
// interception CA (when a secret is bound) and daemon.toml's
// sandbox_ca_files; nil when there are none.
func (n *Network) CACert() []byte { return n.ca }

// Netns returns the path of the sandbox's network namespace, creating it
// on the first call: a namespace owned by the supervisor's (the host's)
// user namespace with lo up and a tap eth0 attached to the gateway (see
// netgw.NewNetns). The path, /proc/<pid>/fd/<fd> of this process, stays
// valid until Close.
func (n *Network) Netns(ctx context.Context) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return "", fmt.Errorf("%w: the network is closed", errdefs.ErrFailedPrecondition)
	}
	if n.ns != nil {
		return n.nsPath, nil
	}
	if n.attached {
		return "", fmt.Errorf("%w: the gateway is attached to a stream already", errdefs.ErrFailedPrecondition)
	}
	t0 := time.Now()
	ns, fd, err := netgw.NewNetns("eth0", n.gw.Network())
	if err != nil {
		return "", err
	}
	if err := n.gw.AttachTap(fd); err != nil {
		ns.Close()
		return "", err
	}
	n.ns, n.attached = ns, true
	n.nsPath = "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(ns.Fd()))
	n.log.Debug("network namespace ready", "path", n.nsPath, "took", time.Since(t0))
	return n.nsPath, nil
}

// AttachStream connects the gateway to a VM's -netdev stream connection;
// the gateway owns conn from then on, even on error.
func (n *Network) AttachStream(conn net.Conn) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || n.attached {
		conn.Close()
		return fmt.Errorf("%w: the gateway is closed or attached already", errdefs.ErrFailedPrecondition)
	}
	n.attached = true
	return n.gw.AttachStream(conn)
}

// isAttached reports whether the backend used Netns or AttachStream.
func (n *Network) isAttached() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attached
}

// SetPolicy replaces the running gateway's policy.
func (n *Network) SetPolicy(p policy.Policy) error { return n.gw.SetPolicy(p) }

// SetSecrets replaces the running gateway's secret bindings.
func (n *Network) SetSecrets(bs []mitm.Binding) error { return n.gw.SetSecrets(bs) }

// Status reports the policy in force, the published ports and counters.
func (n *Network) Status() NetworkStatus {
	return NetworkStatus{Policy: n.gw.Policy(), Published: n.published, Stats: n.gw.Stats(), AuditDropped: n.audit.dropped.Load()}
}

// Close stops the gateway, flushes its audit log and lets go of the
// namespace. Idempotent.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	ns := n.ns
	n.mu.Unlock()
	if n.gw != nil {
		n.gw.Close()
	}
	if ns != nil {
		ns.Close()
	}
	return nil
}

// Secret is one secret value handed to a supervisor.
type Secret struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// maxSecretsBytes bounds what ReadSecrets accepts.
const maxSecretsBytes = 4 << 20

// ReadSecrets reads the secrets the daemon wrote to a supervisor's secrets
// pipe (fd SecretsFD) with Spawn, until EOF. An empty pipe means none.
func ReadSecrets(r io.Reader) ([]Secret, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxSecretsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the secrets pipe: %w", err)
	}
	if len(b) > maxSecretsBytes {
		return nil, fmt.Errorf("%w: more than %d bytes of secrets", errdefs.ErrTooLarge, maxSecretsBytes)
	}
	if len(b) == 0 {
		return nil, nil
	}
	var out []Secret
	if err := json.Unmarshal(b, &out); err != nil {
		// The error would quote the input: say only that it is bad.
		return nil, fmt.Errorf("%w: the secrets pipe does not hold a JSON list", errdefs.ErrInvalidArgument)
	}
	return out, nil
}

// startWithNetwork builds the sandbox's network (if any) and starts the
// sandbox attached to it. On error nothing is left running.
func startWithNetwork(ctx context.Context, cfg Config, audit *auditLog, log *slog.Logger) (*Network, backend.Instance, error) {
	if cfg.Backend == nil || cfg.Spec == nil {
		return nil, nil, fmt.Errorf("%w: supervisor without a backend or spec", errdefs.ErrInvalidArgument)
	}
	var netw *Network
	if cfg.Network != nil {
		var err error
		t0 := time.Now()
		if netw, err = newNetwork(cfg.Dir, *cfg.Network, audit, log); err != nil {
			return nil, nil, fmt.Errorf("network gateway: %w", err)
		}
		log.Info("network gateway ready", "took", time.Since(t0))
	}
	spec := *cfg.Spec
	if netw != nil {
		if spec.Gateway == nil {
			spec.Gateway = &backend.GatewaySpec{}
		}
		g := *spec.Gateway
		g.Attach = netw.attachment()
		spec.Gateway = &g
	}
	inst, err := cfg.Backend.Start(ctx, &spec)
	if err == nil && netw != nil && !netw.isAttached() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backendStopTimeout)
		inst.Stop(sctx)
		cancel()
		err = fmt.Errorf("%w: the backend did not attach the sandbox to its network gateway", errdefs.ErrNotImplemented)
	}
	if err != nil {
		if netw != nil {
			netw.Close()
		}
		return nil, nil, err
	}
	return netw, inst, nil
}

// attachment is the backend's view of the network.
func (n *Network) attachment() *backend.NetworkAttachment {
	link := n.Link()
	return &backend.NetworkAttachment{
		Link: backend.Link{
			SandboxAddr: link.SandboxAddr, GatewayAddr: link.GatewayAddr, PrefixLen: link.PrefixLen, MTU: link.MTU,
			GatewayMAC: n.GatewayMAC(),
		},
		Netns:        n.Netns,
		AttachStream: n.AttachStream,
		CACert:       n.CACert(),
	}
}

// maxPolicyBody bounds PUT /network/policy.
const maxPolicyBody = 4 << 20

// networkRoutes adds the network routes to the ctl mux.
func (s *server) networkRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /network", func(w http.ResponseWriter, r *http.Request) {
		if s.net == nil {
			ctlError(w, fmt.Errorf("%w: this sandbox has no network gateway", errdefs.ErrFailedPrecondition))
			return
		}
		writeJSON(w, s.net.Status())
	})
	mux.HandleFunc("PUT /network/policy", func(w http.ResponseWriter, r *http.Request) {
		if s.net == nil {
			ctlError(w, fmt.Errorf("%w: this sandbox has no network gateway", errdefs.ErrFailedPrecondition))
			return
		}
		var p policy.Policy
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPolicyBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			ctlError(w, fmt.Errorf("%w: policy: %v", errdefs.ErrInvalidArgument, err))
			return
		}
		if err := s.net.SetPolicy(p); err != nil {
			ctlError(w, err)
			return
		}
		writeJSON(w, s.net.Status())
	})
}

// ctlError answers an error with its class's status and message.
func ctlError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(errdefs.HTTPStatus(err))
	json.NewEncoder(w).Encode(ctlErr{Code: errdefs.Code(err), Message: err.Error()})
}

type ctlErr struct {
	Code    string `json:"code"`
	Message string `json:"error"`
}

// Network asks the supervisor for its gateway's status. A sandbox without
// a gateway answers errdefs.ErrFailedPrecondition; an error classed
// errdefs.ErrUnavailable means no supervisor answers.
func (c *Client) Network(ctx context.Context) (NetworkStatus, error) {
	var st NetworkStatus
	err := c.callJSON(ctx, "GET", "/network", nil, &st)
	return st, err
}

// SetNetworkPolicy replaces the running gateway's policy.
func (c *Client) SetNetworkPolicy(ctx context.Context, p policy.Policy) (NetworkStatus, error) {
	var st NetworkStatus
	err := c.callJSON(ctx, "PUT", "/network/policy", p, &st)
	return st, err
}

// callJSON sends in (if not nil) as JSON and decodes the answer into out;
// an error answer comes back with its class.
func (c *Client) callJSON(ctx context.Context, method, path string, in, out any) error {
	return c.callJSONOn(c.http, ctx, method, path, in, out)
}

// callJSONOn is callJSON through hc.
func (c *Client) callJSONOn(hc *http.Client, ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://supervisor"+path, body)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%w: supervisor: %v", errdefs.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%w: supervisor: %v", errdefs.ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ctlErr
		if json.Unmarshal(b, &e) == nil && e.Message != "" {
			return &errdefs.Remote{Class: errdefs.FromCode(e.Code), Message: e.Message}
		}
		return fmt.Errorf("%w: supervisor answered %s", errdefs.ErrUnavailable, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
