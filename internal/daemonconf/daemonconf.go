// Package daemonconf reads daemon.toml, the host-wide configuration of a
// home's daemon and supervisors. It decodes the file strictly (an unknown
// key is an error naming it and its line) into plain sections; each
// consumer checks and converts its own: the daemon its [api], the
// supervisor its [network].
package daemonconf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pelletier/go-toml/v2"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// FileName is the host-wide configuration of a home's daemon and
// supervisors, $AGENTKERNEL_HOME/daemon.toml. It is optional; today it has
// these sections:
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
//	# Extra CA certificates (PEM files) every sandbox trusts, added to its
//	# image's CA bundles and named by SSL_CERT_FILE, REQUESTS_CA_BUNDLE and
//	# NODE_EXTRA_CA_CERTS: for a network whose egress passes a
//	# TLS-inspecting proxy (default: none).
//	sandbox_ca_files = ["/usr/local/share/ca-certificates/corp.crt"]
//	# Replaces the ranges no sandbox may ever reach. FOR TESTS ONLY: the
//	# default covers loopback, RFC 1918, link-local, cloud metadata, CGNAT,
//	# multicast and the host's own addresses and subnets; a list here
//	# replaces all of that.
//	forbidden = ["169.254.0.0/16"]
//
//	[mcp]
//	# The policy of the MCP server, for /mcp on serve and as the defaults
//	# of `agentkernel mcp-server` (whose flags override it). A tool's
//	# arguments can only narrow it.
//	profile = "moderate"          # the most permissive profile a tool may ask for
//	images = ["python:3.12"]      # images tools may use (default: any)
//	max_sandboxes = 10            # per MCP session (0: no limit)
//	max_output_bytes = 1048576    # per output stream; beyond, cut in the middle
//	allowed_domains = ["pypi.org", "*.pythonhosted.org"] # the whole egress allow-list
//	host_dirs = ["/home/me/scratch"] # what upload_dir and download_dir may touch
//
//	[lifecycle]
//	# Whether a paused sandbox's TTL clock runs ("runs", the default) or
//	# stops ("stops": paused time does not count).
//	paused_ttl = "runs"
//
//	[pools]
//	# Fresh sandboxes kept started for the default image and profile on the
//	# container backend (default 2; 0 disables). The environment variable
//	# AGENTKERNEL_DEFAULT_POOL_SIZE overrides it.
//	default_size = 2
//	# More pools, as `serve --pool` takes them (which adds to these).
//	pools = ["backend=microvm,image=host=1", "python:3.12=2"]
//	# The memory limits of all pooled sandboxes together stay within this
//	# (default: a quarter of the host's memory).
//	memory_budget_mb = 4096
//	# Pooled sandboxes made at once (default: the CPU count, at most 4).
//	concurrency = 2
//
//	[telemetry]
//	# Export OpenTelemetry traces (OTLP over HTTP) here; `serve
//	# --otel-endpoint` overrides it, and without either the standard
//	# OTEL_EXPORTER_OTLP_ENDPOINT applies (default: tracing off). Read
//	# by the daemon at start; supervisors get the daemon's choice.
//	otel_endpoint = "http://127.0.0.1:4318"
//
//	[backends.kubernetes]
//	# Offer the kubernetes backend: each sandbox is a pod on this cluster
//	# (docs/KUBERNETES.md). Without this section the backend is not offered.
//	kubeconfig = "/etc/agentkernel/kubeconfig" # "" : in-cluster config
//	context = "prod"                # default: the kubeconfig's current one
//	namespace = "agentkernel"       # default "default"
//	runtime_class = "gvisor"        # default: the cluster's default runtime
//	# Per profile, overriding runtime_class; a class missing on the
//	# cluster is refused, never silently replaced by a weaker one.
//	runtime_classes = { restrictive = "kata" }
//	image_pull_secret = "regcred"   # for both images below (default none)
//	image = "debian:bookworm"       # the pod image for the host image (required)
//	agent_image = "registry.example/agentkernel-agent:v1" # holds /agentkernel-agent (required)
//	# A Localhost seccomp profile on the nodes, for profiles asking for the
//	# strict filter (restrictive); without it they are refused.
//	strict_seccomp_profile = "agentkernel/strict.json"
//	# A sandbox without a network gets a pod with only lo: its init
//	# container removes the rest, with NET_ADMIN. true keeps the pod's
//	# interfaces, fenced by the deny-all NetworkPolicy alone (for
//	# namespaces whose Pod Security level forbids NET_ADMIN; default false).
//	keep_pod_network = false
//	# Keep each sandbox's /root and /home across stops on a
//	# PersistentVolumeClaim of this class (default: none, lost at stop),
//	# of volume_size_mb (default 1024), deleted with the sandbox.
//	storage_class = "standard"
//	volume_size_mb = 1024
//
// Supervisors read it when their sandbox starts, so a change applies to
// sandboxes started afterwards. Unknown keys are errors.
const FileName = "daemon.toml"

// MaxSize bounds daemon.toml and each file it names.
const MaxSize = 1 << 20

// File is daemon.toml's contents, unchecked beyond their types.
type File struct {
	API       API       `toml:"api"`
	Network   Network   `toml:"network"`
	MCP       MCP       `toml:"mcp"`
	Lifecycle Lifecycle `toml:"lifecycle"`
	Pools     Pools     `toml:"pools"`
	Telemetry Telemetry `toml:"telemetry"`
	Backends  Backends  `toml:"backends"`
}

// Backends is the [backends] table: settings of backends that need some.
type Backends struct {
	// Kubernetes is [backends.kubernetes]; nil when absent.
	Kubernetes *Kubernetes `toml:"kubernetes"`
}

// Kubernetes is the [backends.kubernetes] section, checked by the
// kubernetes backend.
type Kubernetes struct {
	Kubeconfig      string            `toml:"kubeconfig"`
	Context         string            `toml:"context"`
	Namespace       string            `toml:"namespace"`
	RuntimeClass    string            `toml:"runtime_class"`
	RuntimeClasses  map[string]string `toml:"runtime_classes"`
	ImagePullSecret string            `toml:"image_pull_secret"`
	Image           string            `toml:"image"`
	AgentImage      string            `toml:"agent_image"`
	// StrictSeccompProfile is a Localhost seccomp profile on the nodes
	// for profiles that need the strict filter (restrictive).
	StrictSeccompProfile string `toml:"strict_seccomp_profile"`
	// KeepPodNetwork leaves a sandbox's pod its interfaces (fenced by
	// the NetworkPolicy alone) instead of removing all but lo.
	KeepPodNetwork bool `toml:"keep_pod_network"`
	// StorageClass gives each sandbox a PersistentVolumeClaim of that
	// class, VolumeSizeMB big, for the files kept across stops.
	StorageClass string `toml:"storage_class"`
	VolumeSizeMB int    `toml:"volume_size_mb"`
}

// Telemetry is the [telemetry] section.
type Telemetry struct {
	OTelEndpoint string `toml:"otel_endpoint"`
}

// Pools is the [pools] section.
type Pools struct {
	// DefaultSize is the default pool's size; nil means DefaultPoolSize.
	DefaultSize    *int     `toml:"default_size"`
	Pools          []string `toml:"pools"`
	MemoryBudgetMB int      `toml:"memory_budget_mb"`
	Concurrency    int      `toml:"concurrency"`
}

// DefaultPoolSize is how many fresh sandboxes the default pool keeps.
const DefaultPoolSize = 2

// DefaultPoolSizeEnv overrides [pools] default_size.
const DefaultPoolSizeEnv = "AGENTKERNEL_DEFAULT_POOL_SIZE"

// DefaultPool returns the default pool's size: the environment's
// DefaultPoolSizeEnv, else default_size, else DefaultPoolSize.
func (p Pools) DefaultPool() (int, error) {
	if v, ok := os.LookupEnv(DefaultPoolSizeEnv); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%w: %s=%q: want a size, 0 or more", errdefs.ErrInvalidArgument, DefaultPoolSizeEnv, v)
		}
		return n, nil
	}
	if p.DefaultSize == nil {
		return DefaultPoolSize, nil
	}
	if *p.DefaultSize < 0 {
		return 0, fmt.Errorf("%w: pools.default_size: %d", errdefs.ErrInvalidArgument, *p.DefaultSize)
	}
	return *p.DefaultSize, nil
}

// Lifecycle is the [lifecycle] section.
type Lifecycle struct {
	// PausedTTL says whether a paused sandbox's TTL clock runs: "runs"
	// (the default: paused time counts) or "stops" (a paused sandbox is
	// never reaped, and resume moves its expiry on by the time it was
	// paused).
	PausedTTL string `toml:"paused_ttl"`
}

// MCP is the [mcp] section; zero values leave the server's defaults.
type MCP struct {
	Profile        string   `toml:"profile"`
	Images         []string `toml:"images"`
	MaxSandboxes   *int     `toml:"max_sandboxes"`
	MaxOutputBytes int      `toml:"max_output_bytes"`
	AllowedDomains []string `toml:"allowed_domains"`
	HostDirs       []string `toml:"host_dirs"`
}

// API is the [api] section.
type API struct {
	HostPaths []string `toml:"host_paths"`
}

// Network is the [network] section.
type Network struct {
	Resolvers       []string `toml:"resolvers"`
	MTU             int      `toml:"mtu"`
	UpstreamCAFiles []string `toml:"upstream_ca_files"`
	SandboxCAFiles  []string `toml:"sandbox_ca_files"`
	Forbidden       []string `toml:"forbidden"`
}

// PausedTTLStops checks [lifecycle] paused_ttl and says whether it is
// "stops".
func (l Lifecycle) PausedTTLStops() (bool, error) {
	switch l.PausedTTL {
	case "", "runs":
		return false, nil
	case "stops":
		return true, nil
	}
	return false, fmt.Errorf("%w: lifecycle.paused_ttl: %q: want \"runs\" or \"stops\"", errdefs.ErrInvalidArgument, l.PausedTTL)
}

// Path is daemon.toml's path in home.
func Path(home string) string { return filepath.Join(home, FileName) }

// Load reads home's daemon.toml; a missing file is the zero File. Errors
// name the file.
func Load(home string) (File, error) {
	p := Path(home)
	b, err := ReadBounded(p)
	if errors.Is(err, fs.ErrNotExist) {
		return File{}, nil
	}
	if err != nil {
		return File{}, err
	}
	f, err := Decode(b)
	if err != nil {
		return File{}, fmt.Errorf("%s: %w", p, err)
	}
	return f, nil
}

// Decode decodes daemon.toml's contents strictly.
func Decode(b []byte) (File, error) {
	var f File
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

// ResolvedHostPaths checks [api] host_paths and returns them resolved
// (absolute, clean, symlinks followed); each must be an existing directory.
func (a API) ResolvedHostPaths() ([]string, error) {
	var out []string
	for _, hp := range a.HostPaths {
		if !filepath.IsAbs(hp) {
			return nil, fmt.Errorf("%w: api.host_paths: %q is not an absolute path", errdefs.ErrInvalidArgument, hp)
		}
		r, err := filepath.EvalSymlinks(filepath.Clean(hp))
		if err != nil {
			return nil, fmt.Errorf("%w: api.host_paths: %v", errdefs.ErrInvalidArgument, err)
		}
		if fi, err := os.Stat(r); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%w: api.host_paths: %s is not a directory", errdefs.ErrInvalidArgument, hp)
		}
		out = append(out, r)
	}
	return out, nil
}

// ReadBounded reads a file of at most MaxSize bytes.
func ReadBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", errdefs.ErrTooLarge, p, MaxSize)
	}
	return b, nil
}
