package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/agentkernel/agentkernel/internal/agents"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Defaults of an agent's sandbox: agents and the toolchains they drive want
// more than the daemon's default 512 MiB.
const (
	agentMemoryMB = 2048
	agentVCPUs    = 2
)

// applyAgent makes create run agent a: its image (which must be built),
// its network preset, its API key bound to its API host (the sandbox sees
// a placeholder), bigger default resources and a label naming it.
func applyAgent(ctx context.Context, c *client.Client, a *agents.Agent, create *api.CreateSandboxRequest) error {
	if create.Image == "" {
		create.Image = a.Image()
	}
	if _, err := c.InspectImage(ctx, create.Image); errors.Is(err, errdefs.ErrNotFound) {
		return fmt.Errorf("the %s image %s is not built yet: run agentkernel setup --agents %s", a.Title, create.Image, a.Name)
	} else if err != nil {
		return err
	}
	if create.Network == nil {
		create.Network = &api.NetworkPolicy{}
	}
	create.Network.Presets = append(create.Network.Presets, a.Preset)
	binding, err := agentKey(ctx, c, a)
	if err != nil {
		return err
	}
	create.Secrets = append(create.Secrets, binding)
	if create.MemoryMB == 0 {
		create.MemoryMB = agentMemoryMB
	}
	if create.VCPUs == 0 {
		create.VCPUs = agentVCPUs
	}
	if create.Labels == nil {
		create.Labels = map[string]string{}
	}
	create.Labels["agentkernel.agent"] = a.Name
	return nil
}

// agentKey is the secret binding of a's API key: from the vault when it
// holds one of a's key variables (by name), else from this process's
// environment, sent inline to the daemon, which keeps it in its vault for
// this sandbox only. The value never enters the sandbox: its variable
// holds a placeholder and the gateway adds the key to requests to the API
// host.
func agentKey(ctx context.Context, c *client.Client, a *agents.Agent) (string, error) {
	k := a.Key
	if list, err := c.ListSecrets(ctx); err == nil {
		have := map[string]bool{}
		for _, s := range list {
			have[s.Name] = true
		}
		for _, v := range k.Vars {
			if have[v] {
				return k.Binding(v), nil
			}
		}
	}
	for _, v := range k.Vars {
		if val := os.Getenv(v); val != "" {
			return v + "=" + val + ":" + k.Host + ":" + k.Header, nil
		}
	}
	return "", fmt.Errorf("no API key for %s: set %s in your environment, or store it with: agentkernel secret set %s",
		a.Title, k.Vars[0], k.Vars[0])
}

// agentCommand is what run executes for a: the interactive CLI without
// arguments, else its unattended form on the arguments as the prompt.
func agentCommand(a *agents.Agent, args []string) []string {
	if len(args) == 0 {
		return []string{a.Binary}
	}
	return a.Unattended(args)
}
