package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/agents"
	"github.com/agentkernel/agentkernel/internal/config"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// newSandboxCmd is the sandbox group. Its create, start, stop, remove and
// list are also top-level commands, as upstream has them.
func newSandboxCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "sandbox",
		Aliases: []string{"sb"},
		Short:   "Create, inspect and remove sandboxes",
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(newCreateCmd(app), newStartCmd(app), newStopCmd(app), newPauseCmd(app), newResumeCmd(app), newRemoveCmd(app),
		newListCmd(app), newInfoCmd(app), newExtendCmd(app), newLogsCmd(app), newNetworkCmd(app),
		newCommitCmd(app), newExportCmd(app), newDiffCmd(app), newForkCmd(app))
	cmd.AddCommand(upstreamSandboxCmds(app)...)
	cmd.AddCommand(newExportConfigCmd(app), newImportConfigCmd(app))
	return cmd
}

type createOptions struct {
	image    string
	profile  string
	backend  string
	dirs     []string
	volumes  []string
	labels   []string
	ttl      string
	memoryMB int
	diskMB   int
	vcpus    int
	noStart  bool
	noPool   bool
	cfg      configFlags
	net      netFlags
	agent    string
	source   sourceFlags
}

func newCreateCmd(app *App) *cobra.Command {
	var o createOptions
	cmd := &cobra.Command{
		Use:   "create [NAME]",
		Short: "Create a sandbox (and start it)",
		Long: `Create makes a sandbox called NAME and starts it (unless --no-start), then
prints its name. Names are 1-63 letters, digits, '_', '.' or '-'.

--dir mounts a host directory: HOSTDIR[:SANDBOXPATH[:ro]], SANDBOXPATH
defaulting to /workspace. --ttl removes the sandbox after that long
(extend it with 'agentkernel sandbox extend').

--config FILE applies an agentkernel.toml, --template NAME a template: the
image, profile and resources (flags win over them), then, once the sandbox
runs, its [[files]] are copied in and its init_script is run as root; if
that fails the sandbox is removed. NAME defaults to the file's
[sandbox] name. Without --config, create does not read ./agentkernel.toml
(as upstream).`,
		Example: `  agentkernel create dev --image python --dir .:/workspace --ttl 2h
  agentkernel create ci --profile restrictive --label team=infra
  agentkernel create --config agentkernel.toml
  agentkernel create py --template python`,
		Args: cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			noteUpstreamBackend(cmd, o.backend)
			cfg, err := o.cfg.load(false)
			if err != nil {
				return err
			}
			var name string
			switch {
			case len(args) == 1:
				name = args[0]
			case cfg != nil && cfg.Sandbox.Name != "":
				name = cfg.Sandbox.Name
			default:
				return fmt.Errorf("missing the sandbox name (agentkernel create NAME)")
			}
			req, err := o.request(name)
			if err != nil {
				return err
			}
			mergeConfig(&req, cfg)
			setup, err := prepareSetup(cfg)
			if err != nil {
				return err
			}
			if o.noStart && !setup.empty() {
				return fmt.Errorf("--no-start cannot be used with a config that has [[files]] or an init_script: they need a running sandbox")
			}
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			var project string
			if o.agent == "" {
				o.agent = config.TemplateAgent(o.cfg.template)
			}
			if o.agent != "" {
				a, err := agents.Get(o.agent)
				if err != nil {
					return err
				}
				// With an agent, --dir is the project it gets a copy of.
				if len(o.dirs) > 1 || (len(o.dirs) == 1 && strings.Contains(o.dirs[0], ":")) {
					return fmt.Errorf("with --agent, --dir names one project directory, which the sandbox gets a copy of at %s", agents.Workdir)
				}
				if len(o.dirs) == 1 {
					project, req.Dirs = o.dirs[0], nil
				}
				if err := applyAgent(cmd.Context(), c, a, &req); err != nil {
					return err
				}
			}
			info, err := c.CreateSandbox(cmd.Context(), req)
			if err != nil {
				return err
			}
			if project != "" {
				if _, err := giveProject(cmd.Context(), c, name, project); err != nil {
					return err
				}
			}
			if err := applySetup(cmd, c, name, setup); err != nil {
				return err
			}
			return printSandbox(cmd.OutOrStdout(), app.JSON, info)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.image, "image", "", "image (default: the daemon's)")
	fl.StringVar(&o.profile, "profile", "", "security profile: permissive, moderate or restrictive")
	fl.StringVarP(&o.backend, "backend", "B", "", "sandbox backend: container, gvisor, microvm (upstream's docker, podman, firecracker are taken as container, microvm; default: the daemon's)")
	fl.StringArrayVarP(&o.dirs, "dir", "d", nil, "mount a host directory, `HOSTDIR[:SANDBOXPATH[:ro]]` (repeatable)")
	fl.StringArrayVarP(&o.volumes, "volume", "v", nil, volumeFlagUsage)
	fl.StringArrayVar(&o.labels, "label", nil, "add a label `KEY=VALUE` (repeatable)")
	fl.StringVar(&o.ttl, "ttl", "", "remove the sandbox after this `DURATION` (e.g. 30m, 2h, 1d)")
	fl.IntVar(&o.memoryMB, "memory-mb", 0, "memory limit in MiB")
	fl.IntVar(&o.diskMB, "disk-mb", 0, "size of the sandbox's disk in MiB, which holds all it writes, /tmp included (default 10240)")
	fl.IntVar(&o.vcpus, "vcpus", 0, "number of CPUs")
	fl.BoolVar(&o.noStart, "no-start", false, "create the sandbox stopped")
	fl.BoolVar(&o.noPool, "no-pool", false, "start a sandbox of its own even when a warm pool matches")
	fl.StringVarP(&o.agent, "agent", "a", "", "make the sandbox for AI coding agent `NAME` (claude, codex, gemini, opencode): its image, network preset and API key; --dir DIR is then copied in")
	o.net.register(cmd, "p")
	o.cfg.register(cmd, false)
	o.source.register(cmd)
	return cmd
}

func (o *createOptions) request(name string) (api.CreateSandboxRequest, error) {
	dirs, err := parseDirs(o.dirs)
	if err != nil {
		return api.CreateSandboxRequest{}, err
	}
	labels, err := parseLabels(o.labels)
	if err != nil {
		return api.CreateSandboxRequest{}, err
	}
	ttl, err := parseDuration("--ttl", o.ttl)
	if err != nil {
		return api.CreateSandboxRequest{}, err
	}
	if o.memoryMB < 0 || o.vcpus < 0 || o.diskMB < 0 {
		return api.CreateSandboxRequest{}, fmt.Errorf("--memory-mb, --disk-mb and --vcpus must not be negative")
	}
	req := api.CreateSandboxRequest{
		Name: name, Image: o.image, Profile: o.profile, Backend: o.backend, Dirs: dirs, Volumes: o.volumes,
		Labels: labels, TTL: ttl, MemoryMB: o.memoryMB, DiskMB: o.diskMB, VCPUs: o.vcpus, NoPool: o.noPool,
	}
	if o.noStart {
		f := false
		req.Start = &f
	}
	if err := o.net.apply(&req); err != nil {
		return api.CreateSandboxRequest{}, err
	}
	o.source.apply(&req)
	return req, nil
}

func newListCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "ps"},
		Short:   "List sandboxes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			list, err := c.ListSandboxes(cmd.Context())
			if err != nil {
				return err
			}
			if app.JSON {
				if list == nil {
					list = []api.SandboxInfo{}
				}
				return printJSON(cmd.OutOrStdout(), list)
			}
			return printSandboxTable(cmd.OutOrStdout(), time.Now(), list)
		},
	}
}

func printSandboxTable(w io.Writer, now time.Time, list []api.SandboxInfo) error {
	t := newTable(w, "NAME", "STATUS", "BACKEND", "IMAGE", "CREATED")
	for _, sb := range list {
		t.row(sb.Name, statusText(sb), sb.Backend, orDash(sb.Image), ago(now, sb.CreatedAt))
	}
	return t.flush()
}

func newInfoCmd(app *App) *cobra.Command {
	return &cobra.Command{
		Use:     "info NAME",
		Aliases: []string{"inspect"},
		Short:   "Describe a sandbox",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := getSandbox(cmd, app, args[0])
			if err != nil {
				return err
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), info)
			}
			return printSandboxInfo(cmd.OutOrStdout(), time.Now(), info)
		},
	}
}

func printSandboxInfo(w io.Writer, now time.Time, sb api.SandboxInfo) error {
	line := func(k, v string) { fmt.Fprintf(w, "%-10s %s\n", k+":", oneLine(v)) }
	line("Name", sb.Name)
	line("UUID", sb.UUID)
	line("Status", statusText(sb))
	if sb.Error != "" {
		line("Error", sb.Error)
	}
	line("Backend", sb.Backend)
	line("Image", orDash(sb.Image))
	line("Profile", orDash(sb.Profile))
	line("Network", orDash(sb.Network))
	for _, v := range sb.Volumes {
		line("Volume", v)
	}
	if sb.Accelerator != "" {
		line("Accel", sb.Accelerator)
	}
	line("VCPUs", zeroDash(sb.VCPUs))
	line("Memory", zeroDash(sb.MemoryMB)+mbSuffix(sb.MemoryMB))
	line("Disk", diskText(sb))
	line("Created", sb.CreatedAt.Local().Format(time.RFC3339)+" ("+ago(now, sb.CreatedAt)+")")
	if sb.ExpiresAt != nil {
		line("Expires", sb.ExpiresAt.Local().Format(time.RFC3339)+" ("+until(now, *sb.ExpiresAt)+")")
	}
	if sb.Ephemeral {
		line("Ephemeral", "yes")
	}
	if len(sb.Labels) > 0 {
		keys := make([]string, 0, len(sb.Labels))
		for k := range sb.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+sb.Labels[k])
		}
		line("Labels", strings.Join(kv, ", "))
	}
	return nil
}

// printSandbox is the output of commands that change one sandbox: its name,
// or with --json its description.
func printSandbox(w io.Writer, asJSON bool, sb api.SandboxInfo) error {
	if asJSON {
		return printJSON(w, sb)
	}
	_, err := fmt.Fprintln(w, oneLine(sb.Name))
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func zeroDash(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

func mbSuffix(n int) string {
	if n == 0 {
		return ""
	}
	return " MiB"
}

// statusText is a sandbox's status, with "disk full" when its disk is.
func statusText(sb api.SandboxInfo) string {
	if sb.Disk != nil && sb.Disk.ReadOnly {
		return sb.Status + " (" + api.DiskReadOnly + ")"
	}
	if sb.Disk != nil && sb.Disk.Full {
		return sb.Status + " (" + api.DiskFull + ")"
	}
	return sb.Status
}

// diskText describes a sandbox's disk: its size, and its use while it runs.
func diskText(sb api.SandboxInfo) string {
	if sb.DiskMB == 0 {
		return "not limited (made before sandbox disks had a size)"
	}
	s := strconv.Itoa(sb.DiskMB) + " MiB"
	if d := sb.Disk; d != nil {
		s += fmt.Sprintf(" (%d MiB used, %d MiB free)", d.UsedMB, d.AvailMB)
		if d.Full {
			s += ": " + strings.ToUpper(api.DiskFull[:1]) + api.DiskFull[1:] + ", writes fail with \"No space left on device\""
		}
	}
	return s
}
