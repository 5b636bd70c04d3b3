package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/agents"
	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/internal/workback"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// The project a sandbox was given a copy of (--dir with --agent) is
// remembered on this side, in $AGENTKERNEL_HOME/work/NAME.json, so that
// `sandbox diff` and `sandbox export --branch` can compare the sandbox
// against it later, from another command.

// workDir is where those records (and non-git baselines) live.
func workDir() (string, error) {
	l, err := paths.Default()
	if err != nil {
		return "", err
	}
	d := filepath.Join(l.Home, "work")
	return d, os.MkdirAll(d, 0o700)
}

func saveWork(name string, src workback.Source) error {
	d, err := workDir()
	if err != nil {
		return err
	}
	b, err := json.Marshal(src)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, name+".json"), b, 0o600)
}

func loadWork(name string) (workback.Source, error) {
	var src workback.Source
	d, err := workDir()
	if err != nil {
		return src, err
	}
	b, err := os.ReadFile(filepath.Join(d, name+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return src, fmt.Errorf("sandbox %s was not given a project copy here (create it with --agent and --dir)", name)
	}
	if err != nil {
		return src, err
	}
	return src, json.Unmarshal(b, &src)
}

// forgetWork removes what saveWork and the baseline left for name.
func forgetWork(name string) {
	if d, err := workDir(); err == nil {
		os.Remove(filepath.Join(d, name+".json"))
		os.Remove(filepath.Join(d, name+".baseline.tar"))
	}
}

// giveProject copies dir into sandbox name and remembers it.
func giveProject(ctx context.Context, c *client.Client, name, dir string) (workback.Source, error) {
	d, err := workDir()
	if err != nil {
		return workback.Source{}, err
	}
	src, err := copyProjectIn(ctx, c, name, dir, filepath.Join(d, name+".baseline.tar"))
	if err != nil {
		return src, err
	}
	return src, saveWork(name, src)
}

func treeOptions() workback.TreeOptions {
	// The agent's tar of /workspace names its entries "workspace/…".
	return workback.TreeOptions{Root: path.Base(agents.Workdir)}
}

func newDiffCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "diff NAME",
		Short: "Show what a sandbox changed in the project it was given (--agent --dir)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := loadWork(args[0])
			if err != nil {
				return err
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			rc, err := c.TarOut(cmd.Context(), args[0], agents.Workdir)
			if err != nil {
				return err
			}
			defer rc.Close()
			d, err := workback.Diff(cmd.Context(), src, rc, treeOptions())
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), d)
			return nil
		},
	}
}

// exportBranch makes the branch of sandbox name's work on demand (`sandbox
// export NAME --branch B`): B is agentkernel/SUFFIX, or SUFFIX alone.
func exportBranch(cmd *cobra.Command, c *client.Client, name, branch string) error {
	src, err := loadWork(name)
	if err != nil {
		return err
	}
	suffix := strings.TrimPrefix(strings.TrimSpace(branch), workback.BranchPrefix)
	if suffix == "" {
		suffix = name
	}
	d, err := workDir()
	if err != nil {
		return err
	}
	rc, err := c.TarOut(cmd.Context(), name, agents.Workdir)
	if err != nil {
		return err
	}
	defer rc.Close()
	res, err := workback.Collect(cmd.Context(), src, rc, workback.CollectOptions{
		Name: suffix, TreeOptions: treeOptions(), PatchPath: filepath.Join(d, suffix+".patch")})
	if err != nil {
		return err
	}
	reportWork(cmd.ErrOrStderr(), res)
	return nil
}
