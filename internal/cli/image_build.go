package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/agentkernel/agentkernel/pkg/api"
)

type imageBuildOptions struct {
	tag       string
	debian    string
	packages  []string
	mirror    string
	noCache   bool
	quiet     bool
	file      string
	buildArgs []string
	allow     []string
	presets   []string
}

func newImageBuildCmd(app *App) *cobra.Command {
	var o imageBuildOptions
	cmd := &cobra.Command{
		Use:   "build -t NAME (--debian SUITE [--packages PKG,...] | [-f Dockerfile] CONTEXT)",
		Short: "Build an image from Debian packages or a Dockerfile, without Docker",
		Long: `Build makes image NAME in the daemon's store.

With --debian, the daemon runs debootstrap to install a minimal Debian SUITE
(bookworm, trixie, …) plus --packages from a Debian mirror: the one this
host's apt uses, or --mirror. Packages are verified against the Debian
archive keyring. The download is cached by suite, mirror and package set
for a week (--no-cache fetches it again); the install is fresh every time.
The daemon must run as root and have debootstrap installed.

With a CONTEXT directory, the daemon builds the Dockerfile in it (or -f):
FROM (an image already in the store: pull or import it first), RUN, COPY,
ADD (files of the context only; no URLs, no archive extraction), ENV, ARG,
WORKDIR, USER, ENTRYPOINT, CMD, LABEL and EXPOSE. RUN, COPY and ADD each
run in a sandbox and become one layer, cached by the
layers below, the instruction and the content it copies; --no-cache runs
every step again. RUN steps have no network unless --allow DOMAIN or
--preset NAME (registries: npm, pypi, go, crates, rubygems, maven, debian,
ubuntu, alpine; or an agent's preset) name what they may reach, through
each step's network gateway; the host, its LAN and cloud metadata are never
reachable. Other instructions, multi-stage builds and heredocs are
refused with an error naming them. An image called NAME is replaced.

On a terminal, progress is shown on stderr; with --json, --quiet or when
stderr is not a terminal, only the result is printed.`,
		Example: `  agentkernel image build --debian bookworm --packages python3,git -t py
  agentkernel run --image py -- python3 -c 'print(1)'
  agentkernel build -t myapp .
  agentkernel build --preset npm -t tools .     # RUN npm install … works`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageBuild(cmd, app, &o, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.tag, "tag", "t", "", "name of the image to build (required)")
	fl.StringVar(&o.debian, "debian", "", "build a Debian `SUITE` (bookworm, trixie, …) with debootstrap")
	fl.StringSliceVar(&o.packages, "packages", nil, "Debian packages to install, comma-separated (repeatable)")
	fl.StringVar(&o.mirror, "mirror", "", "Debian mirror `URL` (default: the one this host's apt uses)")
	fl.StringVarP(&o.file, "file", "f", "", "the Dockerfile (default: CONTEXT/Dockerfile)")
	fl.StringArrayVar(&o.buildArgs, "build-arg", nil, "set an ARG of the Dockerfile, `KEY=VALUE` (repeatable)")
	fl.StringArrayVar(&o.allow, "allow", nil, "let RUN steps reach `DOMAIN` (*.example.com for every name below it; repeatable)")
	fl.StringArrayVar(&o.presets, "preset", nil, "let RUN steps reach a preset's hosts: npm, pypi, debian, … (repeatable)")
	fl.BoolVar(&o.noCache, "no-cache", false, "do not use cached downloads (Debian) or cached steps (Dockerfile)")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "no progress output")
	return cmd
}

// newBuildCmd is upstream's top-level "build -t NAME [-f Dockerfile]
// CONTEXT": image build under its short name.
func newBuildCmd(app *App) *cobra.Command {
	cmd := newImageBuildCmd(app)
	cmd.Use = "build -t NAME [-f Dockerfile] CONTEXT"
	cmd.Short = "Build an image from a Dockerfile (same as image build)"
	return cmd
}

func runImageBuild(cmd *cobra.Command, app *App, o *imageBuildOptions, args []string) error {
	if o.tag == "" {
		return fmt.Errorf("missing -t NAME: the name of the image to build")
	}
	req := api.BuildImageRequest{Name: o.tag, NoCache: o.noCache}
	switch {
	case o.debian != "" && (len(args) > 0 || o.file != ""):
		return fmt.Errorf("--debian and a Dockerfile build context exclude each other")
	case o.debian != "" && (len(o.allow) > 0 || len(o.presets) > 0):
		return fmt.Errorf("--allow and --preset apply to a Dockerfile's RUN steps, not to --debian")
	case o.debian != "":
		var pkgs []string
		for _, p := range o.packages {
			if p = strings.TrimSpace(p); p != "" {
				pkgs = append(pkgs, p)
			}
		}
		req.Debian = &api.DebianSource{Suite: o.debian, Packages: pkgs, Mirror: o.mirror}
	case len(args) == 1:
		ctxDir, err := filepath.Abs(args[0])
		if err != nil {
			return err
		}
		df := o.file
		if df != "" && df != "-" {
			if df, err = filepath.Abs(df); err != nil {
				return err
			}
		} else if df == "-" {
			return fmt.Errorf("-f -: a Dockerfile from stdin is not supported; give its path")
		}
		src := &api.DockerfileSource{Context: ctxDir, Dockerfile: df}
		if len(o.allow) > 0 || len(o.presets) > 0 {
			req.Network = &api.NetworkPolicy{Allow: o.allow, Presets: o.presets}
		}
		for _, a := range o.buildArgs {
			k, v, ok := strings.Cut(a, "=")
			if !ok || k == "" {
				return fmt.Errorf("--build-arg %q: want KEY=VALUE", a)
			}
			if src.BuildArgs == nil {
				src.BuildArgs = map[string]string{}
			}
			src.BuildArgs[k] = v
		}
		req.Dockerfile = src
	default:
		return fmt.Errorf("say what to build: --debian SUITE, or a Dockerfile build CONTEXT directory")
	}
	c, err := connect(cmd, app, exitFailure)
	if err != nil {
		return err
	}
	var line *statusLine
	if !app.JSON && !o.quiet {
		line = newStatusLine(cmd.ErrOrStderr())
	}
	var progress func(api.BuildProgress) error
	if line != nil {
		progress = func(p api.BuildProgress) error {
			line.show(p.Stage + ": " + p.Message)
			return nil
		}
	}
	img, err := c.BuildImage(cmd.Context(), req, progress)
	if line != nil {
		line.clear()
	}
	if err != nil {
		return err
	}
	if app.JSON {
		return printJSON(cmd.OutOrStdout(), img)
	}
	fmt.Fprintln(cmd.OutOrStdout(), oneLine(img.Name))
	return nil
}

// statusLine shows one line of progress on a terminal, redrawn in place
// (at most every statusEvery) and cut to the terminal's width. It is nil
// when w is not a terminal. It is used by one goroutine.
type statusLine struct {
	w     io.Writer
	width int
	last  time.Time
	shown bool
}

const statusEvery = 100 * time.Millisecond

func newStatusLine(w io.Writer) *statusLine {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	width, _, err := term.GetSize(int(f.Fd()))
	if err != nil || width < 20 {
		width = 80
	}
	return &statusLine{w: w, width: width}
}

func (s *statusLine) show(text string) {
	if time.Since(s.last) < statusEvery {
		return
	}
	s.last = time.Now()
	text = oneLine(text)
	if r := []rune(text); len(r) > s.width-1 {
		text = string(r[:s.width-2]) + "…"
	}
	fmt.Fprintf(s.w, "\r\x1b[2K%s", text)
	s.shown = true
}

func (s *statusLine) clear() {
	if s.shown {
		io.WriteString(s.w, "\r\x1b[2K")
	}
}
