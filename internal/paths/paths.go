// Package paths says where agentkernel keeps its state on the host, so the
// CLI, the daemon and the supervisors agree without passing paths around.
//
// Everything lives under one home directory: $AGENTKERNEL_HOME, or
// ~/.agentkernel (upstream's location). Tests point AGENTKERNEL_HOME at a
// temporary directory to get a private daemon.
package paths

import (
	"fmt"
	"os"
	"path/filepath"
)

// Layout is the set of paths under one agentkernel home.
type Layout struct {
	Home string
}

// Default returns the layout for $AGENTKERNEL_HOME or ~/.agentkernel.
func Default() (Layout, error) {
	if h := os.Getenv("AGENTKERNEL_HOME"); h != "" {
		abs, err := filepath.Abs(h)
		if err != nil {
			return Layout{}, fmt.Errorf("AGENTKERNEL_HOME: %w", err)
		}
		return Layout{Home: abs}, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return Layout{}, fmt.Errorf("finding the home directory: %w", err)
	}
	return Layout{Home: filepath.Join(home, ".agentkernel")}, nil
}

// RunDir holds the daemon's socket and pid file; it is 0700.
func (l Layout) RunDir() string { return filepath.Join(l.Home, "run") }

// Socket is the daemon's Unix socket (0600).
func (l Layout) Socket() string { return filepath.Join(l.RunDir(), "agentkernel.sock") }

// PIDFile holds the running daemon's pid.
func (l Layout) PIDFile() string { return filepath.Join(l.RunDir(), "daemon.pid") }

// TokenFile holds the bearer token for the TCP listener (0600).
func (l Layout) TokenFile() string { return filepath.Join(l.Home, "token") }

// Database is the daemon's SQLite database.
func (l Layout) Database() string { return filepath.Join(l.Home, "state.db") }

// DaemonLog is where a daemon started by the CLI writes its log.
func (l Layout) DaemonLog() string { return filepath.Join(l.Home, "daemon.log") }

// SandboxesDir holds one state directory per sandbox, named by its UUID.
func (l Layout) SandboxesDir() string { return filepath.Join(l.Home, "sandboxes") }

// SandboxDir is the state directory of the sandbox with the given UUID.
func (l Layout) SandboxDir(id string) string { return filepath.Join(l.SandboxesDir(), id) }

// ImagesDir is the image store's root.
func (l Layout) ImagesDir() string { return filepath.Join(l.Home, "images") }

// VolumesDir holds the named volumes, one directory each
// (internal/volume).
func (l Layout) VolumesDir() string { return filepath.Join(l.Home, "volumes") }

// RuncRoot is the runc state root for this home's containers.
func (l Layout) RuncRoot() string { return filepath.Join(l.Home, "runc") }

// RunscRoot is the runsc state root for this home's gvisor sandboxes.
func (l Layout) RunscRoot() string { return filepath.Join(l.Home, "runsc") }

// DiskTemplatesDir caches the empty ext4 images that container and gVisor
// sandboxes' disks are copied from, one per disk size.
func (l Layout) DiskTemplatesDir() string { return filepath.Join(l.Home, "disk-templates") }

// AuditDir holds the global audit log and the logs of removed sandboxes.
func (l Layout) AuditDir() string { return filepath.Join(l.Home, "audit") }

// AuditLog is the daemon's global audit log (see internal/audit).
func (l Layout) AuditLog() string { return filepath.Join(l.AuditDir(), "audit.jsonl") }

// RemovedSandboxAudit is where a removed sandbox's audit log is kept:
// audit/sandboxes/<name>-<uuid>.jsonl.
func (l Layout) RemovedSandboxAudit(name, uuid string) string {
	return filepath.Join(l.AuditDir(), "sandboxes", name+"-"+uuid+".jsonl")
}

// EnsureDirs creates the home, run and state directories with private
// permissions. It tightens the mode of directories that already exist.
func (l Layout) EnsureDirs() error {
	for _, d := range []string{l.Home, l.RunDir(), l.SandboxesDir(), l.ImagesDir(), l.RuncRoot(), l.AuditDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
	}
	return nil
}
