package oci

import (
	"errors"
	"slices"
	"testing"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestGenerateGateway(t *testing.T) {
	s := testSpec(t)
	s.Security.Network = "gateway"
	s.Mounts = []backend.Mount{{HostPath: t.TempDir(), Path: "/etc/ssl"}}
	c := testConfig(s)
	c.Network = &Network{
		Netns: "/proc/42/fd/7", Sysfs: "/state/sysfs", FilesDir: "/state/net", ResolvConf: "/state/net/resolv.conf",
		CABundle: "/state/net/ca-bundle.pem", CABundleTargets: []string{"/etc/ssl/certs/ca-certificates.crt"},
	}
	g, err := Generate(s, c)
	if err != nil {
		t.Fatal(err)
	}
	joined := 0
	for _, n := range g.Linux.Namespaces {
		if n.Path != "" {
			if n.Type != "network" || n.Path != "/proc/42/fd/7" {
				t.Errorf("joins %s %s", n.Type, n.Path)
			}
			joined++
		}
	}
	if joined != 1 {
		t.Errorf("joins %d namespaces", joined)
	}
	idx := map[string]int{}
	for i, m := range g.Mounts {
		idx[m.Destination] = i
		switch m.Destination {
		case "/sys":
			if m.Type != "bind" || m.Source != "/state/sysfs" || !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rro") {
				t.Errorf("/sys: %+v", m)
			}
		case "/etc/resolv.conf", backend.NetFilesDir, "/etc/ssl/certs/ca-certificates.crt":
			if !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "nosuid") {
				t.Errorf("%s not read-only: %+v", m.Destination, m)
			}
		}
	}
	for _, d := range []string{"/sys", "/etc/resolv.conf", backend.NetFilesDir, "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl"} {
		if _, ok := idx[d]; !ok {
			t.Errorf("no mount at %s", d)
		}
	}
	if idx["/sys/fs/cgroup"] < idx["/sys"] || idx["/etc/ssl"] < idx["/etc/ssl/certs/ca-certificates.crt"] {
		t.Errorf("mount order: %v", idx)
	}
	for name, n := range map[string]*Network{
		"missing":         nil,
		"relative netns":  {Netns: "fd/7", Sysfs: "/s", FilesDir: "/f", ResolvConf: "/r"},
		"relative sysfs":  {Netns: "/n", Sysfs: "s", FilesDir: "/f", ResolvConf: "/r"},
		"reserved target": {Netns: "/n", Sysfs: "/s", FilesDir: "/f", ResolvConf: "/r", CABundle: "/c", CABundleTargets: []string{"/proc/x"}},
	} {
		c.Network = n
		if _, err := Generate(s, c); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestGenerateGatewayOwnSysfs: without a prepared sysfs (gVisor has its
// own) /sys stays the runtime's sysfs mount.
func TestGenerateGatewayOwnSysfs(t *testing.T) {
	s := testSpec(t)
	s.Security.Network = "gateway"
	c := testConfig(s)
	c.Network = &Network{Netns: "/proc/42/fd/7", FilesDir: "/state/net", ResolvConf: "/state/net/resolv.conf"}
	g, err := Generate(s, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range g.Mounts {
		if m.Destination == "/sys" && m.Type != "sysfs" {
			t.Errorf("/sys: %+v", m)
		}
	}
}
