package supervisor

import (
	"crypto/x509"
	"fmt"
	"net/netip"

	"github.com/agentkernel/agentkernel/internal/daemonconf"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// LoadNetworkConfig reads the [network] section of home's daemon.toml (see
// package daemonconf); a missing file is the defaults. Supervisors read it
// when their sandbox starts, so a change applies to sandboxes started
// afterwards; the daemon reads it at start to refuse a broken one early.
func LoadNetworkConfig(home string) (NetworkConfig, error) {
	f, err := daemonconf.Load(home)
	if err != nil {
		return NetworkConfig{}, err
	}
	cfg, err := networkConfig(f.Network)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", daemonconf.Path(home), err)
	}
	return cfg, nil
}

// ParseNetworkConfig decodes daemon.toml's contents and checks its
// [network] section.
func ParseNetworkConfig(b []byte) (NetworkConfig, error) {
	f, err := daemonconf.Decode(b)
	if err != nil {
		return NetworkConfig{}, err
	}
	return networkConfig(f.Network)
}

// networkConfig checks and converts the [network] section.
func networkConfig(n daemonconf.Network) (NetworkConfig, error) {
	var cfg NetworkConfig
	for _, r := range n.Resolvers {
		ap, err := netip.ParseAddrPort(r)
		if err != nil {
			if ip, err2 := netip.ParseAddr(r); err2 == nil {
				ap, err = netip.AddrPortFrom(ip, 53), nil
			}
		}
		if err != nil || ap.Port() == 0 {
			return cfg, fmt.Errorf("%w: network.resolvers: %q is not an IP or IP:PORT", errdefs.ErrInvalidArgument, r)
		}
		cfg.Resolvers = append(cfg.Resolvers, ap)
	}
	if n.MTU != 0 && (n.MTU < 576 || n.MTU > 65000) {
		return cfg, fmt.Errorf("%w: network.mtu %d: must be 576 to 65000", errdefs.ErrInvalidArgument, n.MTU)
	}
	cfg.MTU = uint32(n.MTU)
	if n.Forbidden != nil {
		cfg.Forbidden = []netip.Prefix{}
		for _, s := range n.Forbidden {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return cfg, fmt.Errorf("%w: network.forbidden: %q is not a CIDR", errdefs.ErrInvalidArgument, s)
			}
			cfg.Forbidden = append(cfg.Forbidden, p.Masked())
		}
	}
	if len(n.UpstreamCAFiles) > 0 {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		for _, p := range n.UpstreamCAFiles {
			b, err := daemonconf.ReadBounded(p)
			if err != nil {
				return cfg, fmt.Errorf("%w: network.upstream_ca_files: %v", errdefs.ErrInvalidArgument, err)
			}
			if !pool.AppendCertsFromPEM(b) {
				return cfg, fmt.Errorf("%w: network.upstream_ca_files: %s holds no PEM certificate", errdefs.ErrInvalidArgument, p)
			}
		}
		cfg.UpstreamRoots = pool
	}
	for _, p := range n.SandboxCAFiles {
		b, err := daemonconf.ReadBounded(p)
		if err != nil {
			return cfg, fmt.Errorf("%w: network.sandbox_ca_files: %v", errdefs.ErrInvalidArgument, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return cfg, fmt.Errorf("%w: network.sandbox_ca_files: %s holds no PEM certificate", errdefs.ErrInvalidArgument, p)
		}
		cfg.SandboxCAs = append(append(cfg.SandboxCAs, b...), '\n')
	}
	return cfg, nil
}
