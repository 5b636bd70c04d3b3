// Package testutil holds helpers shared by tests: building the real binaries
// once, and checks for prerequisites that skip with a message
// naming what is missing.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// BuildAgent builds cmd/agentkernel-agent (static, CGO_ENABLED=0) into dir
// and returns its path. Call it from TestMain.
func BuildAgent(dir string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "agentkernel-agent")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/agentkernel-agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the agent: %v\n%s", err, b)
	}
	return out, nil
}

// BuildBinaries builds bin/agentkernel and the static guest agent into dir,
// as `make build` does, and returns their paths. The agent sits next to
// agentkernel, where the daemon looks for it. Call it from TestMain.
func BuildBinaries(dir string) (ak, agent string, err error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", "", err
	}
	ak, agent = filepath.Join(dir, "agentkernel"), filepath.Join(dir, "agentkernel-agent")
	for out, pkg := range map[string]string{ak: "./cmd/agentkernel", agent: "./cmd/agentkernel-agent"} {
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return ak, agent, nil
}

// ModuleRoot is the repository's root directory (where go.mod is).
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the module root")
	}
	return filepath.Join(filepath.Dir(file), "..", ".."), nil
}

// RequireRoot skips t unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (user namespaces, runc, mounts); .ci/run runs tests as root")
	}
}

// Module is agentkernel's module path.
const Module = "github.com/agentkernel/agentkernel"

// Deps returns the packages pkg depends on (`go list -deps`, test files
// excluded). It skips under -short and when the go command is missing.
func Deps(t *testing.T, pkg string) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not in PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// Imports reports whether dep is banned or a package below it; a banned
// name starting with internal/ or pkg/ is taken inside this module.
func Imports(dep, banned string) bool {
	if strings.HasPrefix(banned, "internal/") || strings.HasPrefix(banned, "pkg/") {
		banned = Module + "/" + banned
	}
	return dep == banned || strings.HasPrefix(dep, banned+"/")
}

// MountWithSpace mounts a small tmpfs at a new directory whose name holds
// a space, under a temporary directory, and returns its path; it is
// unmounted when t ends. Mountinfo escapes such paths (\040), which every
// reader of the mount table must undo. Skips without root or when the
// mount is refused.
func MountWithSpace(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	dir := filepath.Join(t.TempDir(), "a dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}
