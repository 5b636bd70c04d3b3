package daemon

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/pelletier/go-toml/v2"

	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// DaemonConfigFile is the host-wide configuration of a home's daemon and
// supervisors, $AGENTKERNEL_HOME/daemon.toml. It is optional; today it has
// two sections:
//
//	[api]
//	# Host directories that requests over TCP (token holders) may name as
//	# --dir mounts, image imports and build contexts. Default: none; the
//	# Unix socket may always name any path.
//	host_paths = ["/srv/projects"]
//
//	[network]
//	# Upstream DNS servers of every sandbox's gateway (default: the
//	# nameservers of the host's /etc/resolv.conf).
//	resolvers = ["192.0.2.53:53"]
//	# MTU of the sandbox's link to its gateway (default 65000).
//	mtu = 65000
//	# Extra CA certificates (PEM files) that verify the servers of hosts the
//	# gateway intercepts to inject secrets (default: the host's roots only).
//	upstream_ca_files = ["/etc/agentkernel/corp-ca.pem"]
//	# Replaces the ranges no sandbox may ever reach. FOR TESTS ONLY: the
//	# default covers loopback, RFC 1918, link-local, cloud metadata, CGNAT,
//	# multicast and the host's own addresses and subnets; a list here
//	# replaces all of that.
//	forbidden = ["169.254.0.0/16"]
//
// Supervisors read it when their sandbox starts, so a change applies to
// sandboxes started afterwards. Unknown keys are errors.
const DaemonConfigFile = "daemon.toml"

// maxDaemonConfig bounds daemon.toml and each CA file.
const maxDaemonConfig = 1 << 20

type daemonFile struct {
	API struct {
		HostPaths []string `toml:"host_paths"`
	} `toml:"api"`
	Network struct {
		Resolvers       []string `toml:"resolvers"`
		MTU             int      `toml:"mtu"`
		UpstreamCAFiles []string `toml:"upstream_ca_files"`
		Forbidden       []string `toml:"forbidden"`
	} `toml:"network"`
}

// loadNetworkConfig reads the [network] section of home's daemon.toml; a
// missing file is the defaults.
func loadNetworkConfig(home string) (supervisor.NetworkConfig, error) {
	p := filepath.Join(home, DaemonConfigFile)
	b, err := readBounded(p)
	if errors.Is(err, fs.ErrNotExist) {
		return supervisor.NetworkConfig{}, nil
	}
	if err != nil {
		return supervisor.NetworkConfig{}, err
	}
	cfg, err := parseNetworkConfig(b)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", p, err)
	}
	return cfg, nil
}

// loadAPIHostPaths reads [api] host_paths of home's daemon.toml and returns
// them resolved (absolute, clean, symlinks followed); each must be an
// existing directory. A missing file is no paths.
func loadAPIHostPaths(home string) ([]string, error) {
	p := filepath.Join(home, DaemonConfigFile)
	b, err := readBounded(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f, err := decodeDaemonFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	var out []string
	for _, hp := range f.API.HostPaths {
		if !filepath.IsAbs(hp) {
			return nil, fmt.Errorf("%s: %w: api.host_paths: %q is not an absolute path", p, errdefs.ErrInvalidArgument, hp)
		}
		r, err := filepath.EvalSymlinks(filepath.Clean(hp))
		if err != nil {
			return nil, fmt.Errorf("%s: %w: api.host_paths: %v", p, errdefs.ErrInvalidArgument, err)
		}
		if fi, err := os.Stat(r); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%s: %w: api.host_paths: %s is not a directory", p, errdefs.ErrInvalidArgument, hp)
		}
		out = append(out, r)
	}
	return out, nil
}

// decodeDaemonFile decodes daemon.toml strictly: an unknown key is an error
// naming it and its line.
func decodeDaemonFile(b []byte) (daemonFile, error) {
	var f daemonFile
	dec := toml.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) && len(strict.Errors) > 0 {
			row, _ := strict.Errors[0].Position()
			return f, fmt.Errorf("%w: line %d: unknown key %v", errdefs.ErrInvalidArgument, row, strict.Errors[0].Key())
		}
		return f, fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
	}
	return f, nil
}

// parseNetworkConfig decodes and checks daemon.toml's contents.
func parseNetworkConfig(b []byte) (supervisor.NetworkConfig, error) {
	var cfg supervisor.NetworkConfig
	f, err := decodeDaemonFile(b)
	if err != nil {
		return cfg, err
	}
	n := f.Network
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
			b, err := readBounded(p)
			if err != nil {
				return cfg, fmt.Errorf("%w: network.upstream_ca_files: %v", errdefs.ErrInvalidArgument, err)
			}
			if !pool.AppendCertsFromPEM(b) {
				return cfg, fmt.Errorf("%w: network.upstream_ca_files: %s holds no PEM certificate", errdefs.ErrInvalidArgument, p)
			}
		}
		cfg.UpstreamRoots = pool
	}
	return cfg, nil
}

func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDaemonConfig+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDaemonConfig {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", errdefs.ErrTooLarge, p, maxDaemonConfig)
	}
	return b, nil
}
