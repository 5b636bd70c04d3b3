package backend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzValidateMount: a mount it accepts has a clean, absolute target
// outside the reserved paths and a clean source outside the kernel's.
func FuzzValidateMount(f *testing.F) {
	dir := f.TempDir()
	f.Add(dir, "/work")
	f.Add("/", "/")
	f.Add(dir, "/proc/../etc")
	f.Add(dir+"/..", "/a//b")
	f.Fuzz(func(t *testing.T, host, path string) {
		err := ValidateMount(Mount{HostPath: host, Path: path})
		if err != nil {
			return
		}
		if !filepath.IsAbs(path) || filepath.Clean(path) != path || path == "/" || underAny(path, reservedTargets) {
			t.Fatalf("accepted target %q", path)
		}
		if filepath.Clean(host) != host || underAny(host, reservedSources) || host == "/" {
			t.Fatalf("accepted source %q", host)
		}
	})
}

// TestSpecValidate: each field the contract checks is refused with a
// message naming it.
func TestSpecValidate(t *testing.T) {
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent")
	if err := writeExec(agent); err != nil {
		t.Fatal(err)
	}
	good := func() *Spec {
		return &Spec{ID: "abc-123", StateDir: dir, AgentPath: agent, Rootfs: RootfsSpec{Host: true}}
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("a good spec: %v", err)
	}
	var nilSpec *Spec
	if err := nilSpec.Validate(); err == nil {
		t.Error("nil spec accepted")
	}
	bad := map[string]func(*Spec){
		"sandbox id":      func(s *Spec) { s.ID = "../x" },
		"state directory": func(s *Spec) { s.StateDir = dir + "/../x" },
		"rootfs":          func(s *Spec) { s.Rootfs.Layers = []string{"/l"} },
		"layer":           func(s *Spec) { s.Rootfs = RootfsSpec{Layers: []string{"rel"}} },
		"agent binary":    func(s *Spec) { s.AgentPath = dir },
		"mount path":      func(s *Spec) { s.Mounts = []Mount{{HostPath: dir, Path: "/proc/x"}} },
		"mounts":          func(s *Spec) { s.Mounts = make([]Mount, MaxMounts+1) },
		"network mode":    func(s *Spec) { s.Security.Network = "host" },
		"gateway":         func(s *Spec) { s.Security.Network = "gateway" },
		"hostname":        func(s *Spec) { s.Hostname = "a_b" },
		"environment":     func(s *Spec) { s.Env = []string{"A=1", "A=2"} },
	}
	for want, mutate := range bad {
		s := good()
		mutate(s)
		err := s.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

func writeExec(p string) error { return os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755) }
