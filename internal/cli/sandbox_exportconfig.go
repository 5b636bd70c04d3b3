package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/config"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// newExportConfigCmd is upstream's `sandbox export-config NAME`: the
// sandbox's settings as an agentkernel.toml on stdout.
func newExportConfigCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "export-config NAME",
		Short: "Print a sandbox's settings as an agentkernel.toml (image, resources, profile)",
		Long: `Export-config prints what create needs to make a sandbox like NAME: its name,
image, CPUs, memory and profile, as agentkernel.toml text for import-config or
create --config. Files, mounts, labels and the network policy are not in it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := getSandbox(cmd, app, args[0])
			if err != nil {
				return err
			}
			cfg := &config.Config{}
			cfg.Sandbox.Name, cfg.Sandbox.BaseImage, cfg.Security.Profile = info.Name, info.Image, info.Profile
			if info.VCPUs > 0 {
				v := int64(info.VCPUs)
				cfg.Resources.VCPUs = &v
			}
			if info.MemoryMB > 0 {
				m := int64(info.MemoryMB)
				cfg.Resources.MemoryMB = &m
			}
			if info.DiskMB > 0 {
				d := int64(info.DiskMB)
				cfg.Resources.DiskMB = &d
			}
			_, err = cmd.OutOrStdout().Write(config.Render(cfg, ""))
			return err
		},
	}
}

// getSandbox connects to the daemon and describes one sandbox.
func getSandbox(cmd *cobra.Command, app *App, name string) (api.SandboxInfo, error) {
	c, err := connect(cmd, app, exitFailure)
	if err != nil {
		return api.SandboxInfo{}, err
	}
	return c.GetSandbox(cmd.Context(), name)
}

// newImportConfigCmd is upstream's `sandbox import-config FILE [--as NAME]
// [-B BACKEND]`: create --config FILE under another spelling.
func newImportConfigCmd(app *App) *cobra.Command {
	var as, backend string
	cmd := &cobra.Command{
		Use:   "import-config FILE [--as NAME]",
		Short: "Create a sandbox from an agentkernel.toml (as create --config FILE)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			create := newCreateCmd(app)
			create.SetContext(cmd.Context())
			create.SetIn(cmd.InOrStdin())
			create.SetOut(cmd.OutOrStdout())
			create.SetErr(cmd.ErrOrStderr())
			flags := []string{"--config", args[0]}
			if backend != "" {
				flags = append(flags, "--backend", backend)
			}
			if as != "" {
				flags = append(flags, as)
			}
			if err := create.ParseFlags(flags); err != nil {
				return fmt.Errorf("import-config: %w", err)
			}
			return create.RunE(create, create.Flags().Args())
		},
	}
	cmd.Flags().StringVar(&as, "as", "", "name the sandbox `NAME` (default: the file's [sandbox] name)")
	cmd.Flags().StringVarP(&backend, "backend", "B", "", "sandbox backend, as create --backend")
	return cmd
}
