package guestinit

import (
	"encoding/json"
	"fmt"
	"os"
)

// ConfigPath is where the host puts the Config in the initramfs.
const ConfigPath = "/agentkernel.json"

// maxConfig bounds the config file (the environment may be 256 KiB).
const maxConfig = 1 << 20

// The writable disk's serial number and the agent port's name, shared
// with the host.
const (
	RWSerial = "akrw"
	PortName = "org.agentkernel.agent"
)

// Config is what the host tells the guest's init for one boot.
type Config struct {
	Hostname string   `json:"hostname"`
	Env      []string `json:"env,omitempty"`
	// Network is "none" or "loopback" (lo up); later "gateway".
	Network string `json:"network"`
	// Lowers are the serial numbers of the read-only disks the root is
	// stacked from, top first.
	Lowers []string `json:"lowers"`
	// ReadOnlyRoot makes the root read-only once the boot has set up its
	// mounts (/tmp, /dev/shm and the like stay writable).
	ReadOnlyRoot bool `json:"read_only_root,omitempty"`
	// ReadOnly are directories of the root made read-only (the host
	// image's /usr, as on the container backend).
	ReadOnly []string `json:"read_only,omitempty"`
	// Debug makes the agent log debug lines on the console.
	Debug bool `json:"debug,omitempty"`
	// Net, when set, configures the interface to the network gateway.
	Net *NetConfig `json:"net,omitempty"`
	// Dirs are read-only disks mounted at paths in the root (host
	// directories copied at start).
	Dirs []DirMount `json:"dirs,omitempty"`
}

// DirMount mounts the disk with serial Serial at Path, read-only unless
// Writable (a named volume's).
type DirMount struct {
	Serial   string `json:"serial"`
	Path     string `json:"path"`
	Writable bool   `json:"writable,omitempty"`
}

// NetConfig is the sandbox's side of its link to the network gateway, and
// the files the gateway needs in the sandbox. The paths come from the host
// (internal/sandbox), so that this package stays small.
type NetConfig struct {
	MAC       string `json:"mac"`
	Addr      string `json:"addr"`
	PrefixLen int    `json:"prefix_len"`
	Gateway   string `json:"gateway"`
	MTU       int    `json:"mtu"`
	// FilesDir is a read-only tmpfs holding ResolvConf (bound over
	// /etc/resolv.conf) and, with CACert, the CA and a CA bundle (bound
	// over each of BundlePaths the image has).
	FilesDir    string   `json:"files_dir"`
	ResolvConf  string   `json:"resolv_conf"`
	CACertFile  string   `json:"ca_cert_file,omitempty"`
	CACert      []byte   `json:"ca_cert,omitempty"`
	BundleFile  string   `json:"bundle_file,omitempty"`
	BundlePaths []string `json:"bundle_paths,omitempty"`
}

// ReadConfig reads the Config at p.
func ReadConfig(p string) (*Config, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var c Config
	dec := json.NewDecoder(&limitedReader{f, maxConfig})
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("guestinit: %s: %w", p, err)
	}
	return &c, nil
}

type limitedReader struct {
	f *os.File
	n int
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("config over %d bytes", maxConfig)
	}
	if len(b) > l.n {
		b = b[:l.n]
	}
	n, err := l.f.Read(b)
	l.n -= n
	return n, err
}
