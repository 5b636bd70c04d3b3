package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/agentkernel/agentkernel/internal/netgw/mitm"
	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/internal/secrets"
	"github.com/agentkernel/agentkernel/internal/supervisor"
)

// supervisorReady is the write end of the daemon's ready pipe.
type supervisorReady = io.WriteCloser

// runSupervisor runs the supervisor of spec's sandbox on backend b: with
// its network gateway when the spec has one, the secret values read from
// the secrets pipe, and the gateway's attachment handed to b.Start.
func runSupervisor(ctx context.Context, l paths.Layout, dir string, spec *sandbox.Spec, b sandbox.Backend, ready supervisorReady, log *slog.Logger) error {
	secretsPipe := os.NewFile(supervisor.SecretsFD, "secrets")
	defer secretsPipe.Close()
	cfg := supervisor.Config{Dir: dir, Ready: ready, Logger: log}
	if spec.Gateway != nil {
		ns, err := networkSpec(l, spec, secretsPipe)
		if err != nil {
			err = fmt.Errorf("network gateway: %w", err)
			fmt.Fprintln(ready, "error: "+err.Error())
			ready.Close()
			return err
		}
		cfg.Network = ns
	}
	cfg.Start = func(ctx context.Context, n *supervisor.Network) (supervisor.Instance, error) {
		s := *spec
		if n != nil {
			g := *s.Gateway
			g.Attach = attachment(n)
			s.Gateway = &g
		}
		return b.Start(ctx, &s)
	}
	return supervisor.Run(ctx, cfg)
}

// networkSpec builds the supervisor's view of the sandbox's gateway: the
// spec's policy and ports, the host-wide settings of daemon.toml, and the
// bound secrets with their values from r.
func networkSpec(l paths.Layout, spec *sandbox.Spec, r io.Reader) (*supervisor.NetworkSpec, error) {
	nc, err := loadNetworkConfig(l.Home)
	if err != nil {
		return nil, err
	}
	g := spec.Gateway
	ns := &supervisor.NetworkSpec{Sandbox: spec.Name, Policy: g.Policy, Config: nc}
	for _, p := range g.Publish {
		ns.Publish = append(ns.Publish, supervisor.Port{Host: p.HostPort, Sandbox: p.SandboxPort})
	}
	if len(g.Secrets) == 0 {
		return ns, nil
	}
	values, err := supervisor.ReadSecrets(r)
	if err != nil {
		return nil, err
	}
	byName := make(map[string]string, len(values))
	for _, v := range values {
		byName[v.Name] = v.Value
	}
	for _, ref := range g.Secrets {
		v, ok := byName[ref.VaultName]
		if !ok {
			return nil, fmt.Errorf("the daemon did not hand over secret %s", ref.Name)
		}
		b := secrets.Binding{Name: ref.Name, Host: ref.Host, Header: ref.Header}
		ns.Secrets = append(ns.Secrets, mitm.Binding{Host: ref.Host, Header: b.HeaderName(), Value: b.HeaderValue(v)})
	}
	return ns, nil
}

// attachment is the backend's view of the supervisor's network.
func attachment(n *supervisor.Network) *sandbox.NetworkAttachment {
	link := n.Link()
	return &sandbox.NetworkAttachment{
		Link: sandbox.Link{
			SandboxAddr: link.SandboxAddr, GatewayAddr: link.GatewayAddr, PrefixLen: link.PrefixLen, MTU: link.MTU,
			GatewayMAC: n.GatewayMAC(),
		},
		Netns:        n.Netns,
		AttachStream: n.AttachStream,
		CACert:       n.CACert(),
	}
}
