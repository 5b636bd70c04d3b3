package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// FileName is the name the CLI looks for in the current directory.
const FileName = "agentkernel.toml"

// Bounds on what one file may ask for.
const (
	MaxFileBytes   = 1 << 20  // the agentkernel.toml itself
	MaxInitScript  = 64 << 10 // [sandbox] init_script
	MaxFiles       = 256      // [[files]] entries
	MaxCopyBytes   = 16 << 20 // one [[files]] source (the daemon's upload bound)
	MaxTotalCopy   = 64 << 20 // all [[files]] sources together
	maxStringBytes = 4096     // any other string value
	maxVCPUs       = 1024
	maxMemoryMB    = 16 << 20 // 16 TiB: a typo guard; the daemon checks the host
	maxDiskMB      = 16 << 20 // as maxMemoryMB
)

// Config is one agentkernel.toml. Field names and meanings follow upstream
// agentkernel; see docs/CONFIG.md for what each does here.
type Config struct {
	Sandbox   Sandbox   `toml:"sandbox"`
	Build     *Build    `toml:"build"`
	Agent     Agent     `toml:"agent"`
	Resources Resources `toml:"resources"`
	Network   Network   `toml:"network"`
	Security  Security  `toml:"security"`
	Files     []File    `toml:"files"`
	// Ports is parsed so that its presence can be refused by name: port
	// publishing arrives with the network gateway.
	Ports map[string]any `toml:"ports"`

	// Dir is the directory [[files]] sources are relative to: the
	// directory of the file for Load, "" for a template.
	Dir string `toml:"-"`
}

// Sandbox is [sandbox].
type Sandbox struct {
	Name string `toml:"name"`
	// Runtime is upstream's shorthand (python, node, go, rust, ruby, java,
	// c, dotnet, base) for an image; BaseImage wins over it.
	Runtime   string `toml:"runtime"`
	BaseImage string `toml:"base_image"`
	// InitScript is shell text run with /bin/sh -c in the sandbox once,
	// after it is created and the files are copied in.
	InitScript string `toml:"init_script"`
}

// Build is upstream's [build] (a Dockerfile build); refused for now.
type Build struct {
	Dockerfile string            `toml:"dockerfile"`
	Context    string            `toml:"context"`
	Target     string            `toml:"target"`
	Args       map[string]string `toml:"args"`
	NoCache    bool              `toml:"no_cache"`
}

// Agent is [agent].
type Agent struct {
	Preferred         string `toml:"preferred"`
	CompatibilityMode string `toml:"compatibility_mode"`
}

// Resources is [resources]; nil means the daemon's default.
type Resources struct {
	VCPUs    *int64 `toml:"vcpus"`
	MemoryMB *int64 `toml:"memory_mb"`
	// DiskMB is the sandbox's disk size (ours: upstream has none).
	DiskMB *int64 `toml:"disk_mb"`
}

// Network is upstream's [network]: Firecracker's vsock CID (refused) and
// published ports.
type Network struct {
	VsockCID *int64 `toml:"vsock_cid"`
	// Ports are upstream's "HOSTPORT:SANDBOXPORT" or "SANDBOXPORT" (any
	// free host port), published on the host's loopback as --publish.
	Ports []string `toml:"ports"`
}

// Security is [security]. The booleans are nil when not written, so that
// only what a file says is checked against what can be enforced.
type Security struct {
	Profile   string `toml:"profile"`
	Network   *bool  `toml:"network"`
	MountCwd  *bool  `toml:"mount_cwd"`
	MountHome *bool  `toml:"mount_home"`
	PassEnv   *bool  `toml:"pass_env"`
	ReadOnly  *bool  `toml:"read_only"`
	Seccomp   string `toml:"seccomp"`
	Domains   Rules  `toml:"domains"`
	Commands  Rules  `toml:"commands"`
}

// Rules is [security.domains] and [security.commands].
type Rules struct {
	Allow         []string `toml:"allow"`
	Block         []string `toml:"block"`
	AllowlistOnly bool     `toml:"allowlist_only"`
}

func (r Rules) empty() bool { return len(r.Allow) == 0 && len(r.Block) == 0 && !r.AllowlistOnly }

// File is one [[files]] entry: Source on the host (relative to the
// config's directory), Dest an absolute path in the sandbox, Mode an octal
// string (default "0644").
type File struct {
	Source string `toml:"source"`
	Dest   string `toml:"dest"`
	Mode   string `toml:"mode"`
}

// Load reads and parses the file at path (at most MaxFileBytes). Dir of
// the result is the file's directory, made absolute.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", errdefs.ErrNotFound, path)
		}
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", errdefs.ErrInvalidArgument, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", errdefs.ErrTooLarge, path, MaxFileBytes)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Dir = filepath.Dir(abs)
	return c, nil
}

// Parse decodes and checks one agentkernel.toml. Every problem is
// reported, each on its own line; unknown keys and type errors name their
// line. The error is ErrInvalidArgument, or ErrNotImplemented when every
// problem is a setting that cannot be enforced yet.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%w: config larger than %d bytes", errdefs.ErrTooLarge, MaxFileBytes)
	}
	var c Config
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, decodeError(err)
	}
	var p problems
	c.validate(&p)
	c.refuseUnenforceable(&p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

// decodeError rewrites the TOML library's errors as "line N: key: what".
func decodeError(err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		var lines []string
		for _, e := range strict.Errors {
			row, _ := e.Position()
			lines = append(lines, fmt.Sprintf("line %d: unknown key %q", row, keyName(e.Key())))
		}
		return fmt.Errorf("%w: %s", errdefs.ErrInvalidArgument, list(lines))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if m := typeErrRE.FindStringSubmatch(msg); m != nil {
			msg = fmt.Sprintf("a TOML %s where %s belongs", m[1], goTypeName(m[2]))
		}
		if k := keyName(de.Key()); k != "" {
			return fmt.Errorf("%w: line %d: %s: %s", errdefs.ErrInvalidArgument, row, k, msg)
		}
		return fmt.Errorf("%w: line %d: %s", errdefs.ErrInvalidArgument, row, msg)
	}
	return fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
}

var typeErrRE = regexp.MustCompile(`^cannot decode TOML (\w+) into .* of type (\S+)$`)

func goTypeName(t string) string {
	switch strings.TrimLeft(t, "*[]") {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int64", "int":
		return "an integer"
	}
	switch {
	case strings.HasPrefix(t, "[]"):
		return "an array"
	case strings.HasPrefix(t, "map"), strings.Contains(t, "."):
		return "a table"
	}
	return t
}

// keyName renders a key path as written in TOML ("security.domains.allow").
func keyName(k toml.Key) string { return strings.Join(k, ".") }

// problems collects what is wrong with a file.
type problems struct {
	invalid []string // the file is wrong
	refused []string // the file is right, but this agentkernel cannot do it
}

func (p *problems) bad(format string, args ...any) {
	p.invalid = append(p.invalid, fmt.Sprintf(format, args...))
}
func (p *problems) refuse(format string, args ...any) {
	p.refused = append(p.refused, fmt.Sprintf(format, args...))
}

func (p *problems) err() error {
	all := append(append([]string(nil), p.invalid...), p.refused...)
	switch {
	case len(all) == 0:
		return nil
	case len(p.invalid) == 0:
		return fmt.Errorf("%w: %s", errdefs.ErrNotImplemented, list(all))
	}
	return fmt.Errorf("%w: %s", errdefs.ErrInvalidArgument, list(all))
}

// list renders one problem as is and several as an indented list.
func list(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return fmt.Sprintf("%d problems:\n  - %s", len(items), strings.Join(items, "\n  - "))
}
