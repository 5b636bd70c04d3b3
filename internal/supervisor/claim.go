package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/netgw/mitm"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Claims. A warm-pool sandbox starts with a neutral name, the image's
// environment and a deny-all gateway; POST /claim binds its caller's
// settings to it while it runs: the host name, the environment every
// later exec starts from, and the gateway's policy and secrets. The daemon
// writes the same settings into the spec beforehand, so a later restart of
// the sandbox starts with them.

// claimTimeout bounds one claim.
const claimTimeout = 10 * time.Second

// maxClaimBody bounds POST /claim.
const maxClaimBody = 4 << 20

// ClaimRequest is the body of POST /claim.
type ClaimRequest struct {
	Hostname string   `json:"hostname"`
	Env      []string `json:"env,omitempty"`
	// Policy replaces the gateway's; nil for a sandbox without one.
	Policy *policy.Policy `json:"policy,omitempty"`
	// Secrets are the bindings and Values their values from the vault.
	Secrets []backend.SecretRef `json:"secrets,omitempty"`
	Values  []Secret            `json:"values,omitempty"`
	// Resources, when set, are the caller's limits, applied in place
	// (the backend must be a backend.ResourceUpdater).
	Resources *backend.Resources `json:"resources,omitempty"`
}

func (s *server) claim(ctx context.Context, req ClaimRequest) error {
	ctx, cancel := context.WithTimeout(ctx, claimTimeout)
	defer cancel()
	started := time.Now()
	if s.isPaused() {
		return fmt.Errorf("%w: the sandbox is paused", errdefs.ErrFailedPrecondition)
	}
	var bindings []mitm.Binding
	if s.net == nil {
		if req.Policy != nil || len(req.Secrets) > 0 {
			return fmt.Errorf("%w: this sandbox has no network gateway", errdefs.ErrFailedPrecondition)
		}
	} else {
		var err error
		if bindings, err = bindSecrets(req.Secrets, req.Values); err != nil {
			return fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
		}
		if req.Policy == nil {
			return fmt.Errorf("%w: a claim of a sandbox with a gateway must give its policy", errdefs.ErrInvalidArgument)
		}
		if _, err := policy.Compile(*req.Policy); err != nil {
			return err
		}
	}
	if req.Resources != nil {
		ru, ok := s.inst.(backend.ResourceUpdater)
		if !ok {
			return fmt.Errorf("%w: this sandbox's backend cannot change its limits in place", errdefs.ErrFailedPrecondition)
		}
		if err := ru.UpdateResources(ctx, *req.Resources); err != nil {
			return err
		}
	}
	cfg := agentproto.Configure{Env: req.Env}
	if hs, ok := s.inst.(backend.HostnameSetter); ok && req.Hostname != "" {
		if err := hs.SetHostname(ctx, req.Hostname); err != nil {
			return err
		}
	} else {
		cfg.Hostname = req.Hostname
	}
	hostnameDone := time.Since(started)
	if err := s.configureAgent(ctx, cfg); err != nil {
		return err
	}
	agentDone := time.Since(started)
	if s.net != nil {
		// Secrets first: the policy that lets the sandbox reach a bound
		// host must not be in force before the binding is.
		if err := s.net.SetSecrets(bindings); err != nil {
			return err
		}
		if err := s.net.SetPolicy(*req.Policy); err != nil {
			return err
		}
	}
	s.log.Info("sandbox claimed", "hostname", req.Hostname, "secrets", len(req.Secrets),
		"took", time.Since(started), "hostname_took", hostnameDone, "agent_took", agentDone-hostnameDone)
	return nil
}

// configureAgent sends cfg to the guest agent over a session of its own.
func (s *server) configureAgent(ctx context.Context, cfg agentproto.Configure) error {
	if len(cfg.Env) == 0 && cfg.Hostname == "" {
		return nil
	}
	conn, err := s.inst.DialAgent(ctx)
	if err != nil {
		return fmt.Errorf("%w: reaching the agent: %v", errdefs.ErrUnavailable, err)
	}
	c, err := agentproto.NewClient(conn)
	if err != nil {
		conn.Close()
		return fmt.Errorf("%w: agent handshake: %v", errdefs.ErrUnavailable, err)
	}
	defer c.Close()
	return c.Configure(ctx, cfg)
}

func (s *server) claimRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /claim", func(w http.ResponseWriter, r *http.Request) {
		var req ClaimRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxClaimBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			ctlError(w, fmt.Errorf("%w: claim: %v", errdefs.ErrInvalidArgument, err))
			return
		}
		if err := s.claim(r.Context(), req); err != nil {
			ctlError(w, err)
			return
		}
		writeJSON(w, s.status())
	})
}

// Claim binds a warm-pool sandbox's caller settings (see ClaimRequest).
func (c *Client) Claim(ctx context.Context, req ClaimRequest) error {
	return c.callJSON(ctx, "POST", "/claim", req, nil)
}
