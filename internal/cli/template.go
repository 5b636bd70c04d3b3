package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/config"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func newTemplateCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "template",
		Aliases: []string{"templates"},
		Short:   "List, show, save and remove sandbox templates",
		Long: `A template is an agentkernel.toml with a name, used by 'agentkernel init
--template NAME' and 'agentkernel create --template NAME'. The built-in ones
(base, bash, go, java, node, python, ruby, rust) cannot be changed; saved
ones live in $AGENTKERNEL_HOME/templates.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newTemplateListCmd(app), newTemplateShowCmd(), newTemplateSaveCmd(), newTemplateRemoveCmd())
	return cmd
}

// templateInfo is one entry of `template list --json`.
type templateInfo struct {
	Name        string `json:"name"`
	Builtin     bool   `json:"builtin"`
	Image       string `json:"image,omitempty"`
	Description string `json:"description"`
}

func newTemplateListCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the built-in and saved templates",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := openTemplates()
			if err != nil {
				return err
			}
			list, err := ts.List()
			if err != nil {
				return err
			}
			out := make([]templateInfo, 0, len(list))
			for _, t := range list {
				ti := templateInfo{Name: t.Name, Builtin: t.Builtin, Description: t.Description}
				if t.Config != nil {
					ti.Image = t.Config.Image()
				}
				out = append(out, ti)
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			tbl := newTable(cmd.OutOrStdout(), "NAME", "KIND", "IMAGE", "DESCRIPTION")
			for _, t := range out {
				kind := "saved"
				if t.Builtin {
					kind = "built-in"
				}
				tbl.row(t.Name, kind, orDash(t.Image), t.Description)
			}
			return tbl.flush()
		},
	}
}

func newTemplateShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Print a template as agentkernel.toml",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := openTemplates()
			if err != nil {
				return err
			}
			t, err := ts.Get(args[0])
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(config.Render(t.Config, t.Name+": "+t.Description))
			return err
		},
	}
}

func newTemplateSaveCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "save NAME [FILE]",
		Short: "Save an agentkernel.toml (default ./agentkernel.toml) as template NAME",
		Long: `Save checks FILE (default ./agentkernel.toml, "-" for stdin) as create would
and stores it as template NAME. A template cannot have [[files]]: their
sources would have no directory to be relative to. An existing saved
template is replaced only with --force; built-in names are taken.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := config.FileName
			if len(args) == 2 {
				src = args[1]
			}
			data, err := readConfigSource(cmd, src)
			if err != nil {
				return err
			}
			ts, err := openTemplates()
			if err != nil {
				return err
			}
			if err := ts.Save(args[0], data, force); err != nil {
				return fmt.Errorf("%s: %w", src, err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), oneLine(args[0]))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "replace a saved template of the same name")
	return cmd
}

// readConfigSource reads a config file, or stdin for "-", bounded.
func readConfigSource(cmd *cobra.Command, src string) ([]byte, error) {
	var r io.Reader
	if src == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(src)
		if err != nil {
			if os.IsNotExist(err) {
				return nil, fmt.Errorf("%w: %s does not exist", errdefs.ErrNotFound, src)
			}
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, config.MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > config.MaxFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", errdefs.ErrTooLarge, src, config.MaxFileBytes)
	}
	return data, nil
}

func newTemplateRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Aliases: []string{"rm"},
		Short:   "Remove a saved template",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := openTemplates()
			if err != nil {
				return err
			}
			if err := ts.Remove(args[0]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), oneLine(args[0]))
			return nil
		},
	}
}
