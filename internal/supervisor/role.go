package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/netgw/mitm"
	"github.com/agentkernel/agentkernel/internal/secrets"
)

// RunRole is the body of the hidden `agentkernel supervise DIR` role once
// the caller has read DIR's spec and found its backend b: it runs the
// sandbox's supervisor, with its network gateway when the spec has one
// (host-wide settings from home's daemon.toml, the secret values read from
// fd SecretsFD), until the sandbox ends. ready is the pipe the daemon reads
// the start result from.
func RunRole(ctx context.Context, home, dir string, spec *backend.Spec, b backend.Backend, ready io.WriteCloser, log *slog.Logger) error {
	secretsPipe := os.NewFile(SecretsFD, "secrets")
	defer secretsPipe.Close()
	cfg := Config{Dir: dir, Backend: b, Spec: spec, Ready: ready, Logger: log}
	if spec.Gateway != nil {
		ns, err := networkSpec(home, spec, secretsPipe)
		if err != nil {
			err = fmt.Errorf("network gateway: %w", err)
			fmt.Fprintln(ready, "error: "+err.Error())
			ready.Close()
			return err
		}
		cfg.Network = ns
	}
	return Run(ctx, cfg)
}

// networkSpec builds the gateway's configuration: the spec's policy and
// ports, the host-wide settings of daemon.toml, and the bound secrets with
// their values from r.
func networkSpec(home string, spec *backend.Spec, r io.Reader) (*NetworkSpec, error) {
	nc, err := LoadNetworkConfig(home)
	if err != nil {
		return nil, err
	}
	g := spec.Gateway
	ns := &NetworkSpec{Sandbox: spec.Name, Policy: g.Policy, Config: nc, InterceptionCA: g.InterceptionCA}
	for _, p := range g.Publish {
		ns.Publish = append(ns.Publish, Port{Host: p.HostPort, Sandbox: p.SandboxPort})
	}
	if len(g.Secrets) == 0 {
		return ns, nil
	}
	values, err := ReadSecrets(r)
	if err != nil {
		return nil, err
	}
	if ns.Secrets, err = bindSecrets(g.Secrets, values); err != nil {
		return nil, err
	}
	return ns, nil
}

// bindSecrets pairs each reference with its value: the gateway's bindings.
func bindSecrets(refs []backend.SecretRef, values []Secret) ([]mitm.Binding, error) {
	byName := make(map[string]string, len(values))
	for _, v := range values {
		byName[v.Name] = v.Value
	}
	var out []mitm.Binding
	for _, ref := range refs {
		v, ok := byName[ref.VaultName]
		if !ok {
			return nil, fmt.Errorf("the daemon did not hand over secret %s", ref.Name)
		}
		bnd := secrets.Binding{Name: ref.Name, Host: ref.Host, Header: ref.Header}
		out = append(out, mitm.Binding{Host: ref.Host, Header: bnd.HeaderName(), Value: bnd.HeaderValue(v)})
	}
	return out, nil
}
