package daemon

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"

	"github.com/agentkernel/agentkernel/internal/daemonconf"
	"github.com/agentkernel/agentkernel/internal/netgw"
	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// AgentBinaryName is the guest agent's file name, installed next to
// agentkernel.
const AgentBinaryName = "agentkernel-agent"

// findAgent locates the guest agent: explicit path, $AGENTKERNEL_AGENT, or
// next to the agentkernel binary. It must be a static executable, because
// it runs inside sandboxes that may have no libc at all.
func findAgent(explicit, exe string) (string, error) {
	candidates := []string{explicit, os.Getenv("AGENTKERNEL_AGENT")}
	if exe != "" {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), AgentBinaryName))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		abs, err := filepath.Abs(c)
		if err != nil {
			continue
		}
		if err := checkStatic(abs); err != nil {
			return "", err
		}
		return abs, nil
	}
	return "", fmt.Errorf("the guest agent %s was not found next to %s; build it with `make build` (or set AGENTKERNEL_AGENT)", AgentBinaryName, exe)
}

// checkStatic refuses a missing or dynamically linked agent.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("guest agent %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("guest agent %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

func agentCheck(path string) api.DoctorCheck {
	if err := checkStatic(path); err != nil {
		return api.DoctorCheck{Name: "guest agent", Detail: err.Error(), Fix: "run `make build`"}
	}
	return api.DoctorCheck{Name: "guest agent", OK: true, Detail: path + " (static)"}
}

// networkCheck says plainly what network a sandbox gets today.
func networkCheck(home string) api.DoctorCheck {
	c := api.DoctorCheck{Name: "network gateway", OK: true,
		Detail: "moderate and permissive sandboxes reach the network only through their own gateway (egress policy, DNS, secrets, audit); restrictive ones have none"}
	nc, err := supervisor.LoadNetworkConfig(home)
	if err != nil {
		c.OK, c.Detail, c.Fix = false, err.Error(), "fix "+daemonconf.FileName+" in "+home
		return c
	}
	if nc.Resolvers == nil {
		if _, err := netgw.HostResolvers(); err != nil {
			c.OK, c.Detail = false, err.Error()
			c.Fix = "give the gateways upstream DNS servers: resolvers = [\"IP:53\"] under [network] in " + filepath.Join(home, daemonconf.FileName)
			return c
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		c.OK, c.Detail, c.Fix = false, "no /dev/net/tun: "+err.Error(), "load the tun module (modprobe tun)"
	}
	return c
}
