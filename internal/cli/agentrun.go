package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/agentkernel/agentkernel/internal/agents"
	"github.com/agentkernel/agentkernel/internal/workback"
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

// copyProjectIn gives sandbox name a copy of host directory dir at
// agents.Workdir, owned by the agents' user, and returns the snapshot that
// collectWork compares the sandbox against. The copy leaves out any .git
// (the sandbox never gets the host's hooks, config or objects) and, in a
// repository, ignored files.
func copyProjectIn(ctx context.Context, c *client.Client, name, dir, baseline string) (workback.Source, error) {
	src, err := workback.Snapshot(ctx, dir)
	if err != nil {
		return src, err
	}
	if !src.Git {
		src.Baseline = baseline
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(workback.Pack(ctx, src, pw, workback.PackOptions{UID: agents.UserUID, GID: agents.UserUID}))
	}()
	err = c.TarIn(ctx, name, agents.Workdir, pr)
	pr.CloseWithError(err)
	if err != nil {
		return src, fmt.Errorf("copying %s into the sandbox: %w", dir, err)
	}
	return src, nil
}

// collectWork brings back what the sandbox changed under agents.Workdir:
// a branch agentkernel/NAME in the host repository (its working tree,
// index and HEAD untouched), or, outside git, a patch under patchDir.
func collectWork(ctx context.Context, c *client.Client, name string, src workback.Source, patchDir string) (workback.Result, error) {
	rc, err := c.TarOut(ctx, name, agents.Workdir)
	if err != nil {
		return workback.Result{}, err
	}
	defer rc.Close()
	opts := workback.CollectOptions{Name: name, TreeOptions: treeOptions()}
	if !src.Git {
		if err := os.MkdirAll(patchDir, 0o700); err != nil {
			return workback.Result{}, err
		}
		opts.PatchPath = filepath.Join(patchDir, name+".patch")
	}
	return workback.Collect(ctx, src, rc, opts)
}

// reportWork tells the user where the agent's work is.
func reportWork(w io.Writer, res workback.Result) {
	switch {
	case !res.Changed():
		fmt.Fprintln(w, "agentkernel: the agent changed nothing")
	case res.Branch != "":
		fmt.Fprintf(w, "agentkernel: %s\nagentkernel: review it with: git diff HEAD %s\n", res.Summary, res.Branch)
	default:
		fmt.Fprintf(w, "agentkernel: %s\nagentkernel: apply it with: git apply %s\n", res.Summary, res.Patch)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "agentkernel: note: %s\n", n)
	}
}
