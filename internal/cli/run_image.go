package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/config"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// autoImage is the --image value that asks for upstream's detection.
const autoImage = "auto"

// runImage decides which image `run` uses (docs/CONFIG.md, "Which image
// run uses"):
//
//  1. --image NAME;
//  2. the config's image (--config, or ./agentkernel.toml);
//  3. detection from the command (python3 → python:3.12-alpine, …), then
//     from the project's files in the current directory: with --image auto
//     the detected image is used, pulled if it is not in the store; without
//     --image it is used only if it is already in the store;
//  4. "", the daemon's default image (host).
//
// Without --image nothing is pulled, so `run -- python3 …` keeps working,
// on the host image, on a machine with no registry access.
func runImage(cmd *cobra.Command, c *client.Client, flag string, cfg *config.Config, command []string) (string, error) {
	if flag != "" && flag != autoImage {
		return flag, nil
	}
	if flag == "" && cfg != nil && cfg.Image() != "" {
		return cfg.Image(), nil
	}
	rt, from, ok := detect(command)
	if !ok {
		return "", nil
	}
	ctx := cmd.Context()
	stored, found, err := findImage(ctx, c, rt.Image)
	switch {
	case err != nil && flag == "":
		return "", nil // detection is only a preference: the default will do
	case err != nil:
		return "", err
	}
	switch {
	case found:
		return stored, nil
	case flag == "":
		return "", nil
	}
	if stderrIsTerminal(cmd) {
		fmt.Fprintf(cmd.ErrOrStderr(), "agentkernel: pulling %s (detected from %s)…\n", rt.Image, from)
	}
	img, err := c.PullImage(ctx, api.PullImageRequest{Image: rt.Image}, nil)
	if err != nil {
		return "", fmt.Errorf("--image auto chose %s (detected from %s), which is not in the store and could not be pulled: %w\n"+
			"(pass --image NAME to choose another, or leave --image out to use the daemon's default)", rt.Image, from, err)
	}
	return img.Name, nil
}

// pullForRun pulls the image a run names and the store lacks, with
// progress on a terminal's stderr and a one-line note otherwise.
func pullForRun(cmd *cobra.Command, c *client.Client, ref string) error {
	var progress func(api.PullProgress) error
	var bars *pullBars
	if isTerminal(cmd.ErrOrStderr()) {
		bars = newPullBars(cmd.ErrOrStderr())
		progress = bars.update
	} else {
		fmt.Fprintf(cmd.ErrOrStderr(), "agentkernel: %s is not in the image store; pulling it\n", ref)
	}
	_, err := c.PullImage(cmd.Context(), api.PullImageRequest{Image: ref}, progress)
	if bars != nil {
		bars.finish()
	}
	return err
}

// detect is upstream's detection for run: the command first, then the
// project in the current directory. from says what decided.
func detect(command []string) (config.Runtime, string, bool) {
	if rt, ok := config.DetectCommand(command); ok {
		return rt, "the command " + command[0], true
	}
	dir, err := os.Getwd()
	if err != nil {
		return config.Runtime{}, "", false
	}
	if rt, ok := config.DetectProject(dir); ok {
		return rt, "the " + rt.Name + " project in " + dir, true
	}
	return config.Runtime{}, "", false
}

// findImage looks ref up in the daemon's store, by its name or Docker
// Hub's long forms of it, and returns the stored name.
func findImage(ctx context.Context, c *client.Client, ref string) (string, bool, error) {
	list, err := c.ListImages(ctx)
	if err != nil {
		return "", false, fmt.Errorf("listing images: %w", err)
	}
	want := map[string]bool{ref: true}
	if !strings.Contains(strings.SplitN(ref, "/", 2)[0], ".") {
		want["docker.io/"+ref] = true
		want["index.docker.io/"+ref] = true
		if !strings.Contains(ref, "/") {
			want["docker.io/library/"+ref] = true
			want["index.docker.io/library/"+ref] = true
		}
	}
	for _, img := range list {
		if want[img.Name] {
			return img.Name, true, nil
		}
	}
	return "", false, nil
}
