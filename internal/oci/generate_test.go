package oci

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func testSpec(t *testing.T) *backend.Spec {
	t.Helper()
	return &backend.Spec{
		ID:        "0b8f2c1e-5d7a-4c8e-9f00-123456789abc",
		Name:      "demo",
		StateDir:  t.TempDir(),
		AgentPath: "/usr/local/bin/agentkernel-agent",
		Rootfs:    backend.RootfsSpec{Host: true},
		Env:       []string{"FOO=bar"},
		Security:  backend.Security{Network: "loopback", Seccomp: "default"},
	}
}

func testConfig(s *backend.Spec) Config {
	return Config{Rootfs: filepath.Join(s.StateDir, "rootfs"), AgentRunDir: filepath.Join(s.StateDir, "agent-run")}
}

func TestGenerateDefaults(t *testing.T) {
	s := testSpec(t)
	g, err := Generate(s, testConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	l := g.Linux
	if got := l.UIDMappings; len(got) != 1 || got[0] != (specs.LinuxIDMapping{ContainerID: 0, HostID: 100000, Size: 65536}) {
		t.Errorf("uid mappings = %+v", got)
	}
	if got := l.GIDMappings; len(got) != 1 || got[0] != (specs.LinuxIDMapping{ContainerID: 0, HostID: 100000, Size: 65536}) {
		t.Errorf("gid mappings = %+v", got)
	}
	var ns []string
	for _, n := range l.Namespaces {
		if n.Path != "" {
			t.Errorf("namespace %s joins %s; every namespace must be new", n.Type, n.Path)
		}
		ns = append(ns, string(n.Type))
	}
	slices.Sort(ns)
	if want := []string{"cgroup", "ipc", "mount", "network", "pid", "user", "uts"}; !reflect.DeepEqual(ns, want) {
		t.Errorf("namespaces = %v, want %v", ns, want)
	}
	p := g.Process
	if !p.NoNewPrivileges || p.Terminal || p.User.UID != 0 || p.User.GID != 0 || p.Cwd != "/" {
		t.Errorf("process = %+v", p)
	}
	if want := []string{"/.agentkernel/agent", "--listen", "unix:/.agentkernel/run/agent.sock"}; !reflect.DeepEqual(p.Args, want) {
		t.Errorf("args = %v", p.Args)
	}
	if !slices.Contains(p.Env, "FOO=bar") || !slices.ContainsFunc(p.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") }) {
		t.Errorf("env = %v", p.Env)
	}
	c := p.Capabilities
	want := DefaultCapabilities()
	for name, set := range map[string][]string{"bounding": c.Bounding, "effective": c.Effective, "permitted": c.Permitted} {
		if !reflect.DeepEqual(set, want) {
			t.Errorf("%s = %v, want %v", name, set, want)
		}
	}
	if len(c.Ambient) != 0 || len(c.Inheritable) != 0 {
		t.Errorf("ambient %v inheritable %v, want empty", c.Ambient, c.Inheritable)
	}
	for _, bad := range []string{"CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_MKNOD", "CAP_SYS_PTRACE"} {
		if slices.Contains(c.Bounding, bad) {
			t.Errorf("%s in the bounding set", bad)
		}
	}
	r := l.Resources
	if *r.Memory.Limit != 512<<20 || *r.Memory.Swap != 512<<20 {
		t.Errorf("memory = %d swap %d", *r.Memory.Limit, *r.Memory.Swap)
	}
	if *r.CPU.Quota != 100000 || *r.CPU.Period != 100000 || *r.Pids.Limit != 1024 {
		t.Errorf("cpu %d/%d pids %d", *r.CPU.Quota, *r.CPU.Period, *r.Pids.Limit)
	}
	if len(r.Devices) != 1 || r.Devices[0].Allow || r.Devices[0].Access != "rwm" {
		t.Errorf("devices = %+v, want deny all", r.Devices)
	}
	if len(l.Devices) != 0 {
		t.Errorf("extra devices %+v", l.Devices)
	}
	if l.CgroupsPath != "/agentkernel/"+s.ID {
		t.Errorf("cgroups path = %q", l.CgroupsPath)
	}
	for _, m := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi", "/proc/acpi"} {
		if !slices.Contains(l.MaskedPaths, m) {
			t.Errorf("%s not masked", m)
		}
	}
	for _, m := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"} {
		if !slices.Contains(l.ReadonlyPaths, m) {
			t.Errorf("%s not read-only", m)
		}
	}
	if l.Seccomp == nil || l.Seccomp.DefaultAction != specs.ActErrno {
		t.Fatalf("seccomp = %+v", l.Seccomp)
	}
	if g.Root.Readonly {
		t.Error("root read-only without ReadOnlyRoot")
	}
	if g.Hostname != "demo" {
		t.Errorf("hostname = %q", g.Hostname)
	}
	if len(p.Rlimits) != 1 || p.Rlimits[0].Type != "RLIMIT_NOFILE" || p.Rlimits[0].Hard != p.Rlimits[0].Soft || p.Rlimits[0].Hard == 0 {
		t.Errorf("rlimits = %+v", p.Rlimits)
	}
}

func mountAt(g *specs.Spec, dest string) *specs.Mount {
	for i := range g.Mounts {
		if g.Mounts[i].Destination == dest {
			return &g.Mounts[i]
		}
	}
	return nil
}

func TestGenerateMounts(t *testing.T) {
	s := testSpec(t)
	host := t.TempDir()
	s.Mounts = []backend.Mount{{HostPath: host, Path: "/work", ReadOnly: true}, {HostPath: host, Path: "/rw"}}
	s.Security.ReadOnlyRoot = true
	g, err := Generate(s, testConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	if !g.Root.Readonly {
		t.Error("root not read-only")
	}
	checks := []struct {
		dest, typ string
		has       []string
		hasNot    []string
	}{
		{"/.agentkernel/agent", "bind", []string{"ro", "nosuid", "nodev"}, nil},
		{"/.agentkernel/run", "bind", []string{"nosuid", "nodev"}, []string{"ro"}},
		{"/sys", "sysfs", []string{"ro"}, nil},
		{"/dev/pts", "devpts", []string{"newinstance", "ptmxmode=0666"}, nil},
		{"/dev/shm", "tmpfs", nil, nil},
		{"/dev/mqueue", "mqueue", nil, nil},
		{"/proc", "proc", nil, nil},
		{"/tmp", "tmpfs", []string{"mode=1777", "nosuid", "nodev"}, nil},
		{"/work", "bind", []string{"rbind", "ro", "rro", "nosuid", "nodev"}, nil},
		{"/rw", "bind", []string{"rbind", "nosuid", "nodev"}, []string{"ro", "rro"}},
	}
	for _, c := range checks {
		m := mountAt(g, c.dest)
		if m == nil {
			t.Errorf("no mount at %s", c.dest)
			continue
		}
		if m.Type != c.typ {
			t.Errorf("%s: type %q, want %q", c.dest, m.Type, c.typ)
		}
		for _, o := range c.has {
			if !slices.Contains(m.Options, o) {
				t.Errorf("%s: options %v lack %q", c.dest, m.Options, o)
			}
		}
		for _, o := range c.hasNot {
			if slices.Contains(m.Options, o) {
				t.Errorf("%s: options %v have %q", c.dest, m.Options, o)
			}
		}
	}
	if m := mountAt(g, "/.agentkernel/agent"); m.Source != s.AgentPath {
		t.Errorf("agent source %q", m.Source)
	}
}

func TestGenerateRejects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(s *backend.Spec){
		"bad id":          func(s *backend.Spec) { s.ID = "../x" },
		"empty id":        func(s *backend.Spec) { s.ID = "" },
		"relative agent":  func(s *backend.Spec) { s.AgentPath = "agent" },
		"memory low":      func(s *backend.Spec) { s.Resources.MemoryMB = 1 },
		"memory negative": func(s *backend.Spec) { s.Resources.MemoryMB = -5 },
		"vcpus":           func(s *backend.Spec) { s.Resources.VCPUs = -1 },
		"pids":            func(s *backend.Spec) { s.Resources.PidsLimit = 3 },
		"network host":    func(s *backend.Spec) { s.Security.Network = "host" },
		"network gateway": func(s *backend.Spec) { s.Security.Network = "gateway" },
		"seccomp off":     func(s *backend.Spec) { s.Security.Seccomp = "unconfined" },
		"cap sys_admin":   func(s *backend.Spec) { s.Security.Capabilities = []string{"SYS_ADMIN"} },
		"cap bogus":       func(s *backend.Spec) { s.Security.Capabilities = []string{"CAP_FLY"} },
		"env no equals":   func(s *backend.Spec) { s.Env = []string{"FOO"} },
		"env bad key":     func(s *backend.Spec) { s.Env = []string{"A B=c"} },
		"env nul":         func(s *backend.Spec) { s.Env = []string{"A=b\x00c"} },
		"env twice":       func(s *backend.Spec) { s.Env = []string{"A=1", "A=2"} },
		"hostname":        func(s *backend.Spec) { s.Hostname = "bad_host!" },
		"mount proc":      func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: dir, Path: "/proc/x"}} },
		"mount sys":       func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: dir, Path: "/sys"}} },
		"mount dev":       func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: dir, Path: "/dev/shm"}} },
		"mount agent":     func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: dir, Path: "/.agentkernel"}} },
		"mount root":      func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: dir, Path: "/"}} },
		"mount relative":  func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: dir, Path: "work"}} },
		"mount unclean":   func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: dir, Path: "/a/../b"}} },
		"mount twice": func(s *backend.Spec) {
			s.Mounts = []backend.Mount{{HostPath: dir, Path: "/a"}, {HostPath: dir, Path: "/a"}}
		},
		"source file":       func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: file, Path: "/a"}} },
		"source missing":    func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: dir + "/nope", Path: "/a"}} },
		"source symlink":    func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: link, Path: "/a"}} },
		"source relative":   func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: "tmp", Path: "/a"}} },
		"source host root":  func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: "/", Path: "/a"}} },
		"source host proc":  func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: "/proc/1", Path: "/a"}} },
		"source not clean":  func(s *backend.Spec) { s.Mounts = []backend.Mount{{HostPath: dir + "/.", Path: "/a"}} },
		"too many mounts":   func(s *backend.Spec) { s.Mounts = make([]backend.Mount, backend.MaxMounts+1) },
		"too many env vars": func(s *backend.Spec) { s.Env = make([]string, maxEnv+1) },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			s := testSpec(t)
			mutate(s)
			_, err := Generate(s, testConfig(s))
			if err == nil {
				t.Fatal("Generate accepted it")
			}
			if !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrNotImplemented) && !errors.Is(err, errdefs.ErrPermissionDenied) {
				t.Errorf("error %v is not classified", err)
			}
		})
	}
}

func TestGenerateCustom(t *testing.T) {
	s := testSpec(t)
	s.Resources = backend.Resources{MemoryMB: 256, VCPUs: 3, PidsLimit: 64}
	s.Security.Capabilities = []string{"chown", "CAP_KILL", "net_raw", "CAP_KILL"}
	s.Hostname = "box1"
	s.Env = []string{"PATH=/bin"}
	c := testConfig(s)
	c.IDMap = IDMap{HostUID: 200000, HostGID: 300000, Size: 1000}
	c.CgroupParent = "/ak-test"
	c.NoFile = 4096
	g, err := Generate(s, c)
	if err != nil {
		t.Fatal(err)
	}
	r := g.Linux.Resources
	if *r.Memory.Limit != 256<<20 || *r.CPU.Quota != 300000 || *r.Pids.Limit != 64 {
		t.Errorf("resources %d %d %d", *r.Memory.Limit, *r.CPU.Quota, *r.Pids.Limit)
	}
	if want := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"}; !reflect.DeepEqual(g.Process.Capabilities.Bounding, want) {
		t.Errorf("caps = %v", g.Process.Capabilities.Bounding)
	}
	if g.Linux.UIDMappings[0].HostID != 200000 || g.Linux.GIDMappings[0].HostID != 300000 || g.Linux.UIDMappings[0].Size != 1000 {
		t.Errorf("maps %+v %+v", g.Linux.UIDMappings, g.Linux.GIDMappings)
	}
	if g.Linux.CgroupsPath != "/ak-test/"+s.ID || g.Hostname != "box1" {
		t.Errorf("cgroup %q hostname %q", g.Linux.CgroupsPath, g.Hostname)
	}
	if n := g.Process.Rlimits[0]; n.Hard != 4096 || n.Soft != 4096 {
		t.Errorf("nofile %+v", n)
	}
	if slices.Contains(g.Process.Env, defaultPath) {
		t.Errorf("default PATH added to %v", g.Process.Env)
	}
	// A name that is no hostname falls back to "sandbox".
	s.Hostname, s.Name = "", "my sandbox"
	if g, err = Generate(s, c); err != nil || g.Hostname != "sandbox" {
		t.Errorf("hostname %q, %v", g.Hostname, err)
	}
}

func TestWriteReadConfig(t *testing.T) {
	s := testSpec(t)
	g, err := Generate(s, testConfig(s))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteConfig(dir, g); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ConfigName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config.json: %v %v", fi, err)
	}
	back, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Linux.Resources, g.Linux.Resources) || !reflect.DeepEqual(back.Process, g.Process) {
		t.Error("round trip changed the spec")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("leftover files: %v", entries)
	}
}
