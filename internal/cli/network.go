package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// netFlags are the network flags of run and create.
type netFlags struct {
	allow, block, allowCIDR, presets []string
	secrets, publish                 []string
}

// register adds the flags to cmd. publishShort is --publish's letter:
// upstream's run has -P (its -p is --profile), its create -p.
func (f *netFlags) register(cmd *cobra.Command, publishShort string) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.allow, "allow", nil, "let the sandbox resolve and reach `DOMAIN` (or *.DOMAIN) on ports 80 and 443 (repeatable)")
	fl.StringArrayVar(&f.block, "block", nil, "never let the sandbox resolve `DOMAIN`, whatever else allows it (repeatable)")
	fl.StringArrayVar(&f.allowCIDR, "allow-cidr", nil, "let the sandbox reach addresses in `CIDR[:PORT]` without a name, TCP and UDP (repeatable)")
	fl.StringArrayVar(&f.presets, "preset", nil, "allow an agent's API hosts with the registries and git hosts: `NAME` is claude, codex, gemini or opencode (repeatable)")
	fl.StringArrayVarP(&f.secrets, "secret", "S", nil, "bind vault secret KEY to HOST: `KEY:HOST[:HEADER]`; the sandbox's $KEY holds a placeholder and the gateway adds the real value to HTTPS requests to HOST (repeatable)")
	fl.StringArrayVarP(&f.publish, "publish", publishShort, nil, "forward 127.0.0.1:HOSTPORT on this host to the sandbox: `HOSTPORT:SANDBOXPORT` (HOSTPORT 0: any free port; repeatable)")
}

// any reports whether a network flag was given.
func (f *netFlags) any() bool {
	return len(f.allow)+len(f.block)+len(f.allowCIDR)+len(f.presets)+len(f.secrets)+len(f.publish) > 0
}

// apply checks the flags and adds them to req.
func (f *netFlags) apply(req *api.CreateSandboxRequest) error {
	for _, s := range f.secrets {
		if strings.Contains(s, "=") {
			return fmt.Errorf("invalid --secret: a value on the command line would show in the process list; store it with 'agentkernel secret set KEY' and bind KEY:HOST")
		}
		if n := strings.Count(s, ":"); n < 1 || n > 2 || strings.HasPrefix(s, ":") {
			return fmt.Errorf("invalid --secret %q: want KEY:HOST[:HEADER]", s)
		}
	}
	for _, p := range f.publish {
		if _, err := parsePublish(p); err != nil {
			return err
		}
	}
	if len(f.allow)+len(f.block)+len(f.allowCIDR)+len(f.presets) > 0 {
		if req.Network == nil {
			req.Network = &api.NetworkPolicy{}
		}
		n := req.Network
		n.Allow = append(n.Allow, f.allow...)
		n.Block = append(n.Block, f.block...)
		n.AllowCIDRs = append(n.AllowCIDRs, f.allowCIDR...)
		n.Presets = append(n.Presets, f.presets...)
	}
	req.Secrets = append(req.Secrets, f.secrets...)
	req.Publish = append(req.Publish, f.publish...)
	return nil
}

func parsePublish(s string) ([2]uint16, error) {
	h, sb, ok := strings.Cut(s, ":")
	hp, err1 := strconv.ParseUint(h, 10, 16)
	sp, err2 := strconv.ParseUint(sb, 10, 16)
	if !ok || err1 != nil || err2 != nil || sp == 0 {
		return [2]uint16{}, fmt.Errorf("invalid --publish %q: want HOSTPORT:SANDBOXPORT, e.g. 8080:80", s)
	}
	return [2]uint16{uint16(hp), uint16(sp)}, nil
}

type networkOptions struct {
	allow, block, allowCIDR, presets, remove []string
	profile                                  string
}

func (o *networkOptions) changes() bool {
	return len(o.allow)+len(o.block)+len(o.allowCIDR)+len(o.presets)+len(o.remove) > 0 || o.profile != ""
}

func newNetworkCmd(app *App) *cobra.Command {
	var o networkOptions
	cmd := &cobra.Command{
		Use:   "network NAME",
		Short: "Show or change a sandbox's network policy",
		Long: `Network shows a sandbox's egress policy, published ports and secret
bindings, or changes the policy: at once on the running sandbox's gateway,
and for its later starts.

--allow, --block, --allow-cidr and --preset add entries; --remove takes an
entry out of any list; --profile sets the base allow-list (moderate:
package registries and git hosts; permissive: any public address;
restrictive: only what the lists name). Whatever the policy, the host,
the LAN, loopback and cloud metadata addresses stay unreachable.`,
		Example: `  agentkernel sandbox network dev
  agentkernel sandbox network dev --allow api.example.com --allow '*.cdn.example.com'
  agentkernel sandbox network dev --remove api.example.com --preset claude`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(cmd, app, exitFailure)
			if err != nil {
				return err
			}
			info, err := c.SandboxNetwork(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if o.changes() {
				if info.Policy == nil {
					return fmt.Errorf("sandbox %s has no network gateway (network %q)", args[0], info.Mode)
				}
				p := *info.Policy
				if o.profile != "" {
					p.Profile = o.profile
				}
				p.Allow = edit(p.Allow, o.allow, o.remove)
				p.Block = edit(p.Block, o.block, o.remove)
				p.AllowCIDRs = edit(p.AllowCIDRs, o.allowCIDR, o.remove)
				p.Presets = edit(p.Presets, o.presets, o.remove)
				if info, err = c.SetSandboxNetwork(cmd.Context(), args[0], p); err != nil {
					return err
				}
			}
			if app.JSON {
				return printJSON(cmd.OutOrStdout(), info)
			}
			return printNetwork(cmd.OutOrStdout(), info)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&o.allow, "allow", nil, "allow `DOMAIN` or *.DOMAIN (repeatable)")
	fl.StringArrayVar(&o.block, "block", nil, "block `DOMAIN` (repeatable)")
	fl.StringArrayVar(&o.allowCIDR, "allow-cidr", nil, "allow `CIDR[:PORT]` (repeatable)")
	fl.StringArrayVar(&o.presets, "preset", nil, "add an agent preset `NAME` (repeatable)")
	fl.StringArrayVar(&o.remove, "remove", nil, "take `ENTRY` out of the allow, block, CIDR and preset lists (repeatable)")
	fl.StringVar(&o.profile, "profile", "", "base allow-list: moderate, permissive or restrictive")
	return cmd
}

// edit returns list with add appended (once each) and remove taken out.
func edit(list, add, remove []string) []string {
	var out []string
	for _, e := range list {
		if !slices.Contains(remove, e) {
			out = append(out, e)
		}
	}
	for _, e := range add {
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

var profileMeaning = map[string]string{
	"moderate":    "package registries and git hosts",
	"permissive":  "any public address",
	"restrictive": "only the lists below",
}

func printNetwork(w io.Writer, n api.NetworkInfo) error {
	line := func(k, v string) { fmt.Fprintf(w, "%-10s %s\n", k+":", oneLine(v)) }
	list := func(l []string) string {
		if len(l) == 0 {
			return "-"
		}
		return strings.Join(l, ", ")
	}
	line("Sandbox", n.Sandbox)
	mode := n.Mode
	if n.Policy != nil {
		if n.Running {
			mode += " (running: the live policy)"
		} else {
			mode += " (not running: the policy it starts with)"
		}
	}
	line("Network", mode)
	if n.Policy == nil {
		return nil
	}
	p := n.Policy
	prof := p.Profile
	if m := profileMeaning[prof]; m != "" {
		prof += " (" + m + ")"
	}
	line("Profile", prof)
	line("Allow", list(p.Allow))
	line("Block", list(p.Block))
	line("Presets", list(p.Presets))
	line("CIDRs", list(p.AllowCIDRs))
	var pub []string
	for _, pp := range n.Published {
		host := pp.Address
		if host == "" {
			host = "127.0.0.1:" + strconv.Itoa(int(pp.HostPort))
		}
		pub = append(pub, fmt.Sprintf("%s -> %d", host, pp.SandboxPort))
	}
	line("Published", list(pub))
	var sec []string
	for _, s := range n.Secrets {
		sec = append(sec, fmt.Sprintf("$%s -> %s (%s)", s.Name, s.Host, s.Header))
	}
	line("Secrets", list(sec))
	if s := n.Stats; s != nil {
		line("Counters", fmt.Sprintf("tcp %d allowed, %d denied; udp %d allowed, %d denied; dns dropped %d; audit dropped %d",
			s.TCPAllowed, s.TCPDenied, s.UDPAllowed, s.UDPDenied, s.DNSDropped, s.AuditDropped))
	}
	return nil
}
