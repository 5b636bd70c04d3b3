package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func newImagePullCmd(app *App) *cobra.Command {
	var insecure []string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "pull [flags] IMAGE",
		Short: "Pull an image from a registry",
		Long: `Pull fetches IMAGE from its registry into the daemon's image store.
IMAGE is a reference as Docker takes it: "python:3.12" is Docker Hub's
library/python:3.12; "ghcr.io/owner/repo:tag" and "host:port/repo@sha256:..."
name other registries. Credentials come from the daemon user's
~/.docker/config.json and its credential helpers. A multi-platform image
resolves to this host's platform.

Registries are reached over HTTPS; plain HTTP only for loopback registries
and those named with --insecure-registry.

On a terminal, progress is shown on stderr; with --json, --quiet or when
stderr is not a terminal, only the result is printed.`,
		Example: `  agentkernel image pull python:3.12-slim
  agentkernel image pull --insecure-registry 10.0.0.5:5000 10.0.0.5:5000/tools:1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			req := api.PullImageRequest{Image: args[0], InsecureRegistries: insecure}
			var bars *pullBars
			if !app.JSON && !quiet && isTerminal(cmd.ErrOrStderr()) {
				bars = newPullBars(cmd.ErrOrStderr())
			}
			var progress func(api.PullProgress) error
			if bars != nil {
				progress = bars.update
			}
			img, err := c.PullImage(cmd.Context(), req, progress)
			if bars != nil {
				bars.finish()
			}
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), img)
			}
			fmt.Fprintln(cmd.OutOrStdout(), oneLine(img.Name))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "allow plain HTTP to this registry (host or host:port; repeatable)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress output")
	return cmd
}

func newImageInspectCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show an image's layers and config as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			d, err := c.InspectImage(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), d)
		},
	}
}

func newImageTagCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give image SOURCE a second name, TARGET",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			img, err := c.TagImage(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), img)
			}
			fmt.Fprintln(cmd.OutOrStdout(), oneLine(img.Name))
			return nil
		},
	}
}

func newImagePruneCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "prune",
		Short: "Delete layers and blobs that no image uses and no running sandbox has mounted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			rep, err := c.PruneImages(cmd.Context())
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removed %d layers and %d blobs, %s\n", rep.Layers, rep.Blobs, humanSize(rep.Bytes))
			return nil
		},
	}
}

// isTerminal reports whether the reader or writer s is a terminal.
func isTerminal(s any) bool {
	f, ok := s.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// pullBars draws one progress line per layer on a terminal, redrawing
// them in place (at most every redrawEvery, and on every status change).
// It is used by the goroutine that reads the pull's events.
type pullBars struct {
	w     io.Writer
	order []string
	lines map[string]api.PullProgress
	drawn int // lines currently on screen
	last  time.Time
}

const redrawEvery = 100 * time.Millisecond

func newPullBars(w io.Writer) *pullBars {
	return &pullBars{w: w, lines: map[string]api.PullProgress{}}
}

func (b *pullBars) update(p api.PullProgress) error {
	if p.Layer == "" {
		return nil
	}
	old, seen := b.lines[p.Layer]
	if !seen {
		b.order = append(b.order, p.Layer)
	}
	b.lines[p.Layer] = p
	if seen && old.Status == p.Status && time.Since(b.last) < redrawEvery {
		return nil
	}
	b.draw()
	return nil
}

func (b *pullBars) finish() {
	if len(b.order) > 0 {
		b.draw()
	}
}

func (b *pullBars) draw() {
	b.last = time.Now()
	var sb strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", b.drawn) // back to the first line
	}
	for _, id := range b.order {
		sb.WriteString("\x1b[2K")
		sb.WriteString(barLine(b.lines[id]))
		sb.WriteByte('\n')
	}
	b.drawn = len(b.order)
	io.WriteString(b.w, sb.String())
}

// barLine renders one layer: short digest, status, bar, byte counts.
func barLine(p api.PullProgress) string {
	id := strings.TrimPrefix(p.Layer, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	const width = 30
	filled := 0
	if p.Total > 0 {
		filled = int(min(p.Current, p.Total) * width / p.Total)
	}
	bar := ""
	if p.Status == "downloading" || p.Status == "done" || p.Status == "exists" {
		bar = "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "] "
	}
	counts := ""
	if p.Total > 0 && p.Status != "waiting" {
		counts = humanSize(min(p.Current, p.Total)) + " / " + humanSize(p.Total)
	}
	return fmt.Sprintf("%s  %-11s %s%s", id, p.Status, bar, counts)
}
