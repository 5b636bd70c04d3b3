package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/config"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

type initOptions struct {
	template string
	name     string
	agent    string
	force    bool
}

func newInitCmd(app *App) *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write an agentkernel.toml for the current directory",
		Long: `Init writes ./agentkernel.toml from a template: --template NAME, or the one
detected from the project's files (package.json → node, go.mod → go,
requirements.txt or pyproject.toml → python, …; "base" when nothing is
recognised). The sandbox name is the directory's name unless --name.
It prints the file's path. An existing file is replaced only with --force.

Use the file with 'agentkernel create --config agentkernel.toml';
'agentkernel run' reads it by itself. See 'agentkernel template list'.`,
		Example: `  agentkernel init
  agentkernel init --template python --name api`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInit(cmd, &o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.template, "template", "", "template to start from (default: detected from the project)")
	fl.StringVarP(&o.name, "name", "n", "", "sandbox name (default: the directory's name)")
	fl.StringVarP(&o.agent, "agent", "a", "", "preferred agent: claude, codex, gemini or opencode")
	fl.BoolVarP(&o.force, "force", "f", false, "replace an existing agentkernel.toml")
	return cmd
}

func runInit(cmd *cobra.Command, o *initOptions) error {
	dir, err := os.Getwd()
	if err != nil {
		return err
	}
	var tpl config.Template
	if o.template != "" {
		ts, err := openTemplates()
		if err != nil {
			return err
		}
		if tpl, err = ts.Get(o.template); err != nil {
			return err
		}
	} else {
		tpl = config.ProjectTemplate(dir)
	}
	c := tpl.Config
	c.Sandbox.Name = o.name
	if c.Sandbox.Name == "" {
		c.Sandbox.Name = sandboxNameFor(filepath.Base(dir))
	}
	if o.agent != "" {
		c.Agent.Preferred = o.agent
	}
	header := fmt.Sprintf("agentkernel configuration for %s, from the %s template (%s).\nEvery key is described in agentkernel's docs/CONFIG.md.",
		c.Sandbox.Name, tpl.Name, tpl.Description)
	text := config.Render(c, header)
	// What init writes must be what create and run accept.
	if _, err := config.Parse(text); err != nil {
		return fmt.Errorf("the %s template does not make a valid file: %w", tpl.Name, err)
	}
	p := filepath.Join(dir, config.FileName)
	if _, err := os.Lstat(p); err == nil && !o.force {
		return fmt.Errorf("%w: %s (use --force to replace it)", errdefs.ErrAlreadyExists, p)
	}
	if err := config.WriteFileAtomic(p, text, 0o644); err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), p)
	return nil
}

var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// sandboxNameFor makes a sandbox name out of a directory name.
func sandboxNameFor(dir string) string {
	n := strings.Trim(nameUnsafe.ReplaceAllString(dir, "-"), "-._")
	if len(n) > 63 {
		n = strings.TrimRight(n[:63], "-._")
	}
	if n == "" {
		return "my-sandbox"
	}
	return n
}
