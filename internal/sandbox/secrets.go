package sandbox

import (
	"context"
	"errors"
	"fmt"
	"github.com/agentkernel/agentkernel/internal/backend"
	"slices"
	"strings"

	"github.com/agentkernel/agentkernel/internal/secrets"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Secrets. The daemon's vault (Config.Secrets) holds the values; a
// sandbox's spec names them (GatewaySpec.Secrets), its environment holds
// placeholders, and its supervisor receives the values over a pipe at each
// start. Upstream's inline form "KEY=value:host" stores the value in the
// vault under a name scoped to the sandbox, deleted with it. Scoped names
// are not listed.

// scopedPrefix starts the vault names of values given inline at create.
const scopedPrefix = "sandbox."

func scopedName(id, name string) string {
	return scopedPrefix + strings.ReplaceAll(id, "-", "") + "." + name
}

func (m *Manager) vault() (*secrets.Vault, error) {
	if m.cfg.Secrets == nil {
		return nil, fmt.Errorf("%w: this daemon has no secret vault", errdefs.ErrFailedPrecondition)
	}
	return m.cfg.Secrets, nil
}

// resolveSecrets parses a create request's bindings into g.Secrets and adds
// their placeholders, and the CA variables, to spec.Env. Named secrets must
// be in the vault; inline ones are returned for storeInlineSecrets.
func (m *Manager) resolveSecrets(entries []string, spec *backend.Spec, g *backend.GatewaySpec) ([]secrets.Binding, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	if len(entries) > maxSecrets {
		return nil, fmt.Errorf("%w: %d secret bindings (at most %d)", errdefs.ErrInvalidArgument, len(entries), maxSecrets)
	}
	v, err := m.vault()
	if err != nil {
		return nil, err
	}
	var inline []secrets.Binding
	hosts := map[string]bool{}
	for _, e := range entries {
		b, err := secrets.ParseBinding(e)
		if err != nil {
			return nil, err
		}
		if hosts[b.Host] {
			return nil, fmt.Errorf("%w: two secrets bound to %s", errdefs.ErrInvalidArgument, b.Host)
		}
		hosts[b.Host] = true
		ref := backend.SecretRef{Name: b.Name, VaultName: b.Name, Host: b.Host, Header: b.HeaderName()}
		if b.Value != "" {
			ref.VaultName = scopedName(spec.ID, b.Name)
			inline = append(inline, b)
		} else if _, err := v.Get(b.Name); err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return nil, fmt.Errorf("%w: no secret named %s in the vault; set it with: agentkernel secret set %s", errdefs.ErrInvalidArgument, b.Name, b.Name)
			}
			return nil, err
		}
		g.Secrets = append(g.Secrets, ref)
		spec.Env = setEnv(spec.Env, b.Name+"="+secrets.Placeholder(b.Name))
	}
	return inline, nil
}

// setEnv sets each KEY=VALUE of kvs in env, replacing an earlier KEY.
func setEnv(env []string, kvs ...string) []string {
	out := slices.Clone(env) // env may be the image's, shared
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, e := range out {
			if strings.HasPrefix(e, k+"=") {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// storeInlineSecrets puts the values given inline at create in the vault,
// scoped to sandbox id.
func (m *Manager) storeInlineSecrets(id string, inline []secrets.Binding) error {
	for _, b := range inline {
		if _, err := m.cfg.Secrets.Set(scopedName(id, b.Name), b.Value); err != nil {
			return err
		}
	}
	return nil
}

// deleteSandboxSecrets removes the vault entries scoped to sandbox id.
func (m *Manager) deleteSandboxSecrets(id string) {
	if m.cfg.Secrets == nil {
		return
	}
	list, err := m.cfg.Secrets.List()
	if err != nil {
		m.log.Warn("listing the vault", "err", err)
		return
	}
	prefix := scopedName(id, "")
	for _, s := range list {
		if strings.HasPrefix(s.Name, prefix) {
			if err := m.cfg.Secrets.Delete(s.Name); err != nil {
				m.log.Warn("deleting a sandbox's secret", "sandbox", id, "err", err)
			}
		}
	}
}

// secretValues fetches the values a sandbox's supervisor needs, keyed by
// vault name.
func (m *Manager) secretValues(spec *backend.Spec) ([]supervisor.Secret, error) {
	if spec.Gateway == nil || len(spec.Gateway.Secrets) == 0 {
		return nil, nil
	}
	v, err := m.vault()
	if err != nil {
		return nil, err
	}
	var out []supervisor.Secret
	for _, r := range spec.Gateway.Secrets {
		val, err := v.Get(r.VaultName)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, fmt.Errorf("%w: secret %s is no longer in the vault; set it again with: agentkernel secret set %s", errdefs.ErrFailedPrecondition, r.Name, r.Name)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, supervisor.Secret{Name: r.VaultName, Value: val})
	}
	return out, nil
}

// sandboxSecrets returns the secret values for the sandbox whose state
// directory is dir.
func (m *Manager) sandboxSecrets(dir string) ([]supervisor.Secret, error) {
	spec, err := backend.ReadSpec(dir)
	if err != nil {
		return nil, err
	}
	return m.secretValues(spec)
}

// ListSecrets lists the vault's secrets, never their values.
func (m *Manager) ListSecrets(ctx context.Context) ([]api.SecretInfo, error) {
	v, err := m.vault()
	if err != nil {
		return nil, err
	}
	list, err := v.List()
	if err != nil {
		return nil, err
	}
	out := []api.SecretInfo{}
	for _, s := range list {
		if !strings.HasPrefix(s.Name, scopedPrefix) {
			out = append(out, api.SecretInfo{Name: s.Name, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt})
		}
	}
	return out, nil
}

// GetSecret returns a secret's value.
func (m *Manager) GetSecret(ctx context.Context, name string) (api.SecretValue, error) {
	v, err := m.vault()
	if err != nil {
		return api.SecretValue{}, err
	}
	if err := secrets.ValidName(name); err != nil {
		return api.SecretValue{}, err
	}
	val, err := v.Get(name)
	if err != nil {
		return api.SecretValue{}, err
	}
	return api.SecretValue{Name: name, Value: val}, nil
}

// SetSecret stores a secret; sandboxes bound to it get the new value at
// their next start.
func (m *Manager) SetSecret(ctx context.Context, name, value string) (api.SecretInfo, error) {
	v, err := m.vault()
	if err != nil {
		return api.SecretInfo{}, err
	}
	if err := secrets.ValidName(name); err != nil {
		return api.SecretInfo{}, err
	}
	info, err := v.Set(name, value)
	if err != nil {
		return api.SecretInfo{}, err
	}
	m.log.Info("secret set", "name", name)
	return api.SecretInfo{Name: info.Name, CreatedAt: info.CreatedAt, UpdatedAt: info.UpdatedAt}, nil
}

// DeleteSecret removes a secret from the vault. Sandboxes bound to it keep
// running; their next start fails until it is set again.
func (m *Manager) DeleteSecret(ctx context.Context, name string) error {
	v, err := m.vault()
	if err != nil {
		return err
	}
	if err := secrets.ValidName(name); err != nil {
		return err
	}
	if err := v.Delete(name); err != nil {
		return err
	}
	m.log.Info("secret deleted", "name", name)
	return nil
}
