package backend

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// AgentDir is where every backend puts the guest agent inside a sandbox
// (its binary, its run directory, NetFilesDir); no user mount may cover it.
const AgentDir = "/.agentkernel"

// Limits that every backend applies to a Spec.
const (
	MaxMounts   = 64
	MaxEnv      = 1024
	MaxEnvBytes = 256 << 10
	maxPathLen  = 4096
)

var (
	idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	// HostnameRE is one DNS label, as a sandbox's host name must be.
	HostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	envKeyRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)
)

// ValidateID checks that id is usable as a runtime container id and a
// cgroup and path name.
func ValidateID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%w: sandbox id %q must be 1-128 characters of [A-Za-z0-9_.-]", errdefs.ErrInvalidArgument, id)
	}
	return nil
}

// Validate checks what every backend needs of s before it touches the
// host: the id, the state directory (absolute, clean, an existing
// directory), the rootfs (the host view or absolute, clean layer paths),
// the agent binary (an executable file), the mounts (ValidateMount), the
// network mode (a gateway one must come with its attachment), the host
// name and the environment. A backend adds only its own limits on top.
// Errors name the offending field.
func (s *Spec) Validate() error {
	if s == nil {
		return fmt.Errorf("%w: nil spec", errdefs.ErrInvalidArgument)
	}
	if err := ValidateID(s.ID); err != nil {
		return err
	}
	if !cleanAbs(s.StateDir) {
		return fmt.Errorf("%w: state directory %q must be an absolute, clean path", errdefs.ErrInvalidArgument, s.StateDir)
	}
	if fi, err := os.Lstat(s.StateDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("%w: state directory %s: not a directory (%v)", errdefs.ErrFailedPrecondition, s.StateDir, err)
	}
	if s.Rootfs.Host == (len(s.Rootfs.Layers) > 0) {
		return fmt.Errorf("%w: the rootfs must be either the host view or a list of layers", errdefs.ErrInvalidArgument)
	}
	for _, l := range s.Rootfs.Layers {
		if !cleanAbs(l) {
			return fmt.Errorf("%w: layer %q must be an absolute, clean path", errdefs.ErrInvalidArgument, l)
		}
	}
	if s.Restore != nil && !cleanAbs(s.Restore.ImageDir) {
		return fmt.Errorf("%w: checkpoint directory %q must be an absolute, clean path", errdefs.ErrInvalidArgument, s.Restore.ImageDir)
	}
	if !cleanAbs(s.AgentPath) {
		return fmt.Errorf("%w: agent path %q must be an absolute, clean path", errdefs.ErrInvalidArgument, s.AgentPath)
	}
	fi, err := os.Stat(s.AgentPath)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%w: agent binary %q: not an executable file (%v)", errdefs.ErrFailedPrecondition, s.AgentPath, err)
	}
	if len(s.Mounts) > MaxMounts {
		return fmt.Errorf("%w: %d mounts (at most %d)", errdefs.ErrInvalidArgument, len(s.Mounts), MaxMounts)
	}
	for _, m := range s.Mounts {
		if err := ValidateMount(m); err != nil {
			return err
		}
	}
	if len(s.Mounts)+len(s.Volumes) > MaxMounts {
		return fmt.Errorf("%w: %d mounts and volumes (at most %d)", errdefs.ErrInvalidArgument, len(s.Mounts)+len(s.Volumes), MaxMounts)
	}
	disks := map[string]bool{}
	for _, v := range s.Volumes {
		if err := CheckMountTarget(v.Path); err != nil {
			return err
		}
		if disks[v.Disk] {
			// Twice in one microVM would be two writers of one ext4.
			return fmt.Errorf("%w: volume %q is mounted twice", errdefs.ErrInvalidArgument, v.Name)
		}
		disks[v.Disk] = true
		if !cleanAbs(v.Disk) {
			return fmt.Errorf("%w: volume %q: disk %q must be an absolute, clean path", errdefs.ErrInvalidArgument, v.Name, v.Disk)
		}
		if fi, err := os.Lstat(v.Disk); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: volume %q: disk %s: not a regular file (%v)", errdefs.ErrFailedPrecondition, v.Name, v.Disk, err)
		}
	}
	switch s.Security.Network {
	case "", "none", "loopback":
	case "gateway":
		if s.Gateway == nil || s.Gateway.Attach == nil {
			return fmt.Errorf("%w: network mode gateway without a gateway to attach to (the supervisor attaches one)", errdefs.ErrFailedPrecondition)
		}
	default:
		return fmt.Errorf("%w: unknown network mode %q", errdefs.ErrInvalidArgument, s.Security.Network)
	}
	if s.Hostname != "" && !HostnameRE.MatchString(s.Hostname) {
		return fmt.Errorf("%w: hostname %q is not a valid host name label", errdefs.ErrInvalidArgument, s.Hostname)
	}
	return validateEnv(s.Env)
}

// validateEnv checks KEY=VALUE entries: valid keys, no NUL, none twice,
// within MaxEnv and MaxEnvBytes.
func validateEnv(env []string) error {
	if len(env) > MaxEnv {
		return fmt.Errorf("%w: %d environment variables (at most %d)", errdefs.ErrInvalidArgument, len(env), MaxEnv)
	}
	total := 0
	seen := make(map[string]bool, len(env))
	for _, kv := range env {
		total += len(kv)
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !envKeyRE.MatchString(k) || strings.ContainsRune(kv, 0) {
			return fmt.Errorf("%w: environment entry %.64q is not KEY=VALUE", errdefs.ErrInvalidArgument, kv)
		}
		if seen[k] {
			return fmt.Errorf("%w: environment variable %s set twice", errdefs.ErrInvalidArgument, k)
		}
		seen[k] = true
	}
	if total > MaxEnvBytes {
		return fmt.Errorf("%w: environment is %d bytes (at most %d)", errdefs.ErrInvalidArgument, total, MaxEnvBytes)
	}
	return nil
}

// reservedTargets may not be the target of a user mount, nor contain one.
var reservedTargets = []string{"/proc", "/sys", "/dev", AgentDir}

// reservedSources may not be shared into a sandbox, nor anything under them.
var reservedSources = []string{"/proc", "/sys", "/dev", "/boot"}

// ValidateMount checks one user mount: Path must be absolute, clean, not "/"
// and outside /proc, /sys, /dev and AgentDir; HostPath must be an absolute,
// clean path to an existing directory reached without symlinks, and not a
// kernel filesystem or "/".
func ValidateMount(m Mount) error {
	if err := CheckMountTarget(m.Path); err != nil {
		return err
	}
	hp := m.HostPath
	if hp == "" || !cleanAbs(hp) {
		return fmt.Errorf("%w: mount source %q must be an absolute, clean path", errdefs.ErrInvalidArgument, hp)
	}
	if hp == "/" || underAny(hp, reservedSources) {
		return fmt.Errorf("%w: mount source %q may not be shared into a sandbox", errdefs.ErrPermissionDenied, hp)
	}
	fi, err := os.Lstat(hp)
	if err != nil {
		return fmt.Errorf("%w: mount source %q: %v", errdefs.ErrInvalidArgument, hp, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: mount source %q is not a directory", errdefs.ErrInvalidArgument, hp)
	}
	resolved, err := filepath.EvalSymlinks(hp)
	if err != nil {
		return fmt.Errorf("%w: mount source %q: %v", errdefs.ErrInvalidArgument, hp, err)
	}
	if resolved != hp {
		return fmt.Errorf("%w: mount source %q goes through a symlink (it is %q)", errdefs.ErrInvalidArgument, hp, resolved)
	}
	return nil
}

// CheckMountTarget validates a path inside the sandbox that a mount will
// cover.
func CheckMountTarget(p string) error {
	if p == "" || !cleanAbs(p) {
		return fmt.Errorf("%w: mount path %q must be an absolute, clean path", errdefs.ErrInvalidArgument, p)
	}
	if p == "/" || underAny(p, reservedTargets) {
		return fmt.Errorf("%w: mount path %q is reserved", errdefs.ErrInvalidArgument, p)
	}
	return nil
}

func cleanAbs(p string) bool {
	return filepath.IsAbs(p) && filepath.Clean(p) == p && len(p) <= maxPathLen && !strings.ContainsRune(p, 0)
}

// underAny reports whether p is one of dirs or below one of them.
func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}
