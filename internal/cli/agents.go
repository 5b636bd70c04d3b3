package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/agents"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// buildAgentImages builds the image chain of each named agent (all when
// names is empty) through the daemon, skipping images already in the store
// (their names hash their inputs), and tags each agent's image with its
// stable name. Progress goes to w.
func buildAgentImages(ctx context.Context, c *client.Client, names []string, w io.Writer) error {
	var picked []string
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			picked = append(picked, n)
		}
	}
	if len(picked) == 0 {
		picked = agents.Names()
	}
	var list []*agents.Agent
	for _, n := range picked {
		a, err := agents.Get(n)
		if err != nil {
			return err
		}
		list = append(list, a)
	}
	done := map[string]bool{}
	for _, a := range list {
		for _, spec := range agents.Chain(a) {
			if done[spec.Name] {
				continue
			}
			if err := buildAgentImage(ctx, c, spec, w); err != nil {
				return fmt.Errorf("building %s for %s: %w", spec.Name, a.Title, err)
			}
			done[spec.Name] = true
		}
		fmt.Fprintf(w, "%s: %s ready (%s@%s)\n", a.Name, a.Image(), a.Package, a.Version)
	}
	return nil
}

// buildAgentImage builds one image of a chain unless the store has it, and
// tags its alias.
func buildAgentImage(ctx context.Context, c *client.Client, spec agents.ImageSpec, w io.Writer) error {
	if _, err := c.InspectImage(ctx, spec.Name); err == nil {
		fmt.Fprintf(w, "  %s: cached\n", spec.Name)
	} else if !errors.Is(err, errdefs.ErrNotFound) {
		return err
	} else {
		req := api.BuildImageRequest{Name: spec.Name, Debian: spec.Debian}
		if spec.Dockerfile != "" {
			dir, err := os.MkdirTemp("", "agentkernel-agent-image-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			if err := writeContext(dir, spec); err != nil {
				return err
			}
			req.Dockerfile = &api.DockerfileSource{Context: dir}
			req.Network = &api.NetworkPolicy{Presets: spec.Presets}
		}
		fmt.Fprintf(w, "  %s: building\n", spec.Name)
		last := ""
		_, err := c.BuildImage(ctx, req, func(p api.BuildProgress) error {
			if p.Stage != api.BuildStageOutput && p.Message != last {
				fmt.Fprintf(w, "    %s: %s\n", p.Stage, oneLine(p.Message))
				last = p.Message
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if spec.Alias != "" {
		if _, err := c.TagImage(ctx, spec.Name, spec.Alias); err != nil {
			return err
		}
	}
	return nil
}

// writeContext writes spec's Dockerfile and files into dir. The daemon
// reads it as root, so it is a private temporary directory.
func writeContext(dir string, spec agents.ImageSpec) error {
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(spec.Dockerfile), 0o644); err != nil {
		return err
	}
	for p, content := range spec.Files {
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func newAgentsCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "agents",
		Short: "List the AI coding agents, whether their image is built and their key set, and how to run each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			rows := agentRows(cmd.Context(), c)
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AGENT\tVERSION\tIMAGE\tKEY\tRUN")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Version, r.Image, r.Key, r.Run)
			}
			return tw.Flush()
		},
	}
}

// agentRow is one line of `agentkernel agents`.
type agentRow struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Version string `json:"version"`
	// Image is "built" or what to run to build it.
	Image string `json:"image"`
	// Key says where the API key would come from, or that there is none.
	Key string `json:"key"`
	Run string `json:"run"`
}

func agentRows(ctx context.Context, c *client.Client) []agentRow {
	vault := map[string]bool{}
	if list, err := c.ListSecrets(ctx); err == nil {
		for _, s := range list {
			vault[s.Name] = true
		}
	}
	var rows []agentRow
	for _, a := range agents.All() {
		r := agentRow{Name: a.Name, Title: a.Title, Version: a.Version,
			Run: "agentkernel run --agent " + a.Name + " --dir . -- 'your task'"}
		if _, err := c.InspectImage(ctx, a.Image()); err == nil {
			r.Image = "built"
		} else {
			r.Image = "agentkernel setup --agents " + a.Name
		}
		r.Key = "missing: set " + a.Key.Vars[0] + " or agentkernel secret set " + a.Key.Vars[0]
		for _, v := range a.Key.Vars {
			if vault[v] {
				r.Key = "vault " + v
				break
			}
			if os.Getenv(v) != "" {
				r.Key = "environment " + v
				break
			}
		}
		rows = append(rows, r)
	}
	return rows
}
