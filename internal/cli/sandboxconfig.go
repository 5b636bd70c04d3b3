package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/config"
	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// configFlags select the agentkernel.toml (or template) a create or run
// applies.
type configFlags struct {
	file     string
	template string
	noConfig bool
}

// register adds --config and --template, plus --no-config for run (which
// reads ./agentkernel.toml on its own, as upstream does).
func (f *configFlags) register(cmd *cobra.Command, forRun bool) {
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "config", "c", "", "apply this agentkernel.toml `FILE`")
	fl.StringVar(&f.template, "template", "", "apply this template (see agentkernel template list)")
	if forRun {
		fl.BoolVar(&f.noConfig, "no-config", false, "do not read ./"+config.FileName)
	}
}

// load returns the config to apply, or nil. With auto (run), a
// ./agentkernel.toml is used when neither --config nor --no-config is
// given.
func (f *configFlags) load(auto bool) (*config.Config, error) {
	switch {
	case f.file != "" && f.template != "":
		return nil, fmt.Errorf("--config and --template cannot be combined")
	case f.file != "" && f.noConfig:
		return nil, fmt.Errorf("--config and --no-config cannot be combined")
	case f.file != "":
		return config.Load(f.file)
	case f.template != "":
		ts, err := openTemplates()
		if err != nil {
			return nil, err
		}
		t, err := ts.Get(f.template)
		if err != nil {
			return nil, err
		}
		return t.Config, nil
	case !auto || f.noConfig:
		return nil, nil
	}
	c, err := config.Load(config.FileName)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w\n(run with --no-config to ignore it)", err)
	}
	return c, nil
}

// openTemplates opens the saved templates of this agentkernel home.
func openTemplates() (*config.Templates, error) {
	l, err := paths.Default()
	if err != nil {
		return nil, err
	}
	return config.OpenTemplates(filepath.Join(l.Home, "templates")), nil
}

// mergeConfig fills req from cfg where the command's flags left it empty:
// flags win over the file. Published ports add up.
func mergeConfig(req *api.CreateSandboxRequest, cfg *config.Config) {
	if cfg == nil {
		return
	}
	from := cfg.Request()
	if req.Image == "" {
		req.Image = from.Image
	}
	if req.Profile == "" {
		req.Profile = from.Profile
	}
	if req.VCPUs == 0 {
		req.VCPUs = from.VCPUs
	}
	if req.MemoryMB == 0 {
		req.MemoryMB = from.MemoryMB
	}
	if req.DiskMB == 0 {
		req.DiskMB = from.DiskMB
	}
	if req.Network == nil {
		req.Network = from.Network
	}
	req.Publish = append(req.Publish, from.Publish...)
}

// setup is what a config asks of a sandbox once it runs: files to copy
// in and a script to run.
type setup struct {
	files  []config.Copy
	script string
}

// prepareSetup checks cfg's files before the sandbox exists, so that a
// missing or forbidden source fails without creating anything.
func prepareSetup(cfg *config.Config) (setup, error) {
	if cfg == nil {
		return setup{}, nil
	}
	files, err := cfg.ResolveFiles()
	if err != nil {
		return setup{}, err
	}
	return setup{files: files, script: cfg.Sandbox.InitScript}, nil
}

func (s setup) empty() bool { return len(s.files) == 0 && s.script == "" }

// apply copies the files into the running sandbox name, then runs the
// init script as root with its output on w.
func (s setup) apply(ctx context.Context, c *client.Client, name string, w io.Writer) error {
	for _, f := range s.files {
		if err := copyIn(ctx, c, name, f); err != nil {
			return fmt.Errorf("copying %s to %s: %w", f.Source, f.Dest, err)
		}
	}
	if s.script == "" {
		return nil
	}
	st, err := c.ExecStream(ctx, name, api.ExecRequest{Command: []string{"/bin/sh", "-c", s.script}, User: "0", Workdir: "/"})
	if err != nil {
		return fmt.Errorf("running init_script: %w", err)
	}
	defer st.Close()
	exit, err := pump(st, localIO{stdout: w, stderr: w, sizeFd: -1})
	if err != nil {
		return fmt.Errorf("running init_script: %w", err)
	}
	if exit.ExitCode != 0 {
		msg := fmt.Sprintf("init_script failed with exit code %d", exit.ExitCode)
		if exit.Message != "" {
			msg += ": " + oneLine(exit.Message)
		}
		return errors.New(msg)
	}
	return nil
}

func copyIn(ctx context.Context, c *client.Client, name string, f config.Copy) error {
	if dir := path.Dir(f.Dest); dir != "/" {
		if err := c.Mkdir(ctx, name, dir); err != nil {
			return err
		}
	}
	src, err := f.Open()
	if err != nil {
		return err
	}
	defer src.Close()
	return c.WriteFile(ctx, name, f.Dest, src, fs.FileMode(f.Mode))
}

// applySetup runs s on a just-created sandbox; if it fails the sandbox is
// removed (it is not what the config asked for) and the error says so.
func applySetup(cmd *cobra.Command, c *client.Client, name string, s setup) error {
	if s.empty() {
		return nil
	}
	err := s.apply(cmd.Context(), c, name, cmd.ErrOrStderr())
	if err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), removeTimeout)
	defer cancel()
	if rerr := c.RemoveSandbox(ctx, name); rerr != nil && !errors.Is(rerr, errdefs.ErrNotFound) {
		return fmt.Errorf("%w (and removing sandbox %s failed: %v)", err, name, rerr)
	}
	return fmt.Errorf("%w; sandbox %s was removed", err, name)
}

// stderrIsTerminal reports whether the command's stderr is a terminal.
func stderrIsTerminal(cmd *cobra.Command) bool {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
