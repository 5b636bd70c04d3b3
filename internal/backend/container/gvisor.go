package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Flavor selects the OCI runtime a Backend drives and with it the
// sandbox's boundary. Both flavors share everything else: the bundle
// (internal/oci), the rootfs and its layout, the guest agent, the gateway
// attachment and the exit detection. What differs is decided here, in
// one place:
//
//   - gvisor runs runsc: the sandbox's syscalls go to gVisor's user-space
//     kernel (the Sentry), which runs on a probed platform (systrap, else
//     ptrace), with --network=sandbox so gVisor's own netstack drives the
//     tap eth0 of the netns the supervisor prepared (never host
//     networking; see gvisorNetwork), --overlay2=none so that writes
//     reach the backend's overlayfs upper layer (commit, export and
//     restarts read it) and --host-uds=create so the agent's Unix socket
//     in agent-run/ is a host socket the supervisor can dial.
//   - gVisor has its own sysfs; the bind of a sysfs mounted from the netns
//     (network.go) is runc's business only.
//   - The OCI seccomp profile is enforced inside the Sentry (--oci-seccomp);
//     the errnos runsc cannot return are the agent's (gvisorSeccomp).
//   - Memory snapshots: `runsc checkpoint` and `runsc restore`, with the
//     agent's host socket suspended around them (checkpoint.go).
//   - The host name lives in the Sentry, not in a host UTS namespace, so a
//     gvisor instance is no backend.HostnameSetter. Nor is it a
//     ResourceUpdater: that `runsc update` changes a running sandbox's
//     limits is not shown yet.
type Flavor string

const (
	// Runc is the default flavor: runc, Linux namespaces and seccomp.
	Runc Flavor = ""
	// GVisor runs each sandbox under runsc.
	GVisor Flavor = "gvisor"
)

// DefaultRunscCache is where scripts/runsc.sh caches the runsc it builds,
// as <DefaultRunscCache>/<gvisor module version>/runsc.
const DefaultRunscCache = "/var/cache/agentkernel/runsc"

// gvisorPlatforms are the Sentry platforms tried, in order: systrap is
// the fast one without KVM; ptrace works where seccomp-trap tricks do not.
var gvisorPlatforms = []string{"systrap", "ptrace"}

// platformProbeFile caches the probed platform in the runtime root, keyed
// by the runsc binary, so that each supervisor does not probe again.
const platformProbeFile = "platform.json"

// findRunsc returns the runsc to use: Options.Runtime if set, else the
// newest build in the cache (scripts/runsc.sh), else runsc in PATH.
func findRunsc(runtime, cache string) (string, error) {
	if runtime != "" {
		return exec.LookPath(runtime)
	}
	if cache == "" {
		cache = DefaultRunscCache
	}
	// Versions are pseudo-versions (v0.0.0-YYYYMMDDhhmmss-commit), so the
	// lexically last is the newest.
	if m, _ := filepath.Glob(filepath.Join(cache, "*", "runsc")); len(m) > 0 {
		for i := len(m) - 1; i >= 0; i-- {
			if fi, err := os.Stat(m[i]); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return m[i], nil
			}
		}
	}
	return exec.LookPath("runsc")
}

// gvisorFlags are runsc's global flags for a platform.
func gvisorFlags(platform string) []string {
	return []string{
		"--platform=" + platform,
		"--overlay2=none",
		"--host-uds=create",
		// A fresh empty netns per gofer: the default ("null") is one
		// shared namespace bind-mounted at <root>/null-netns, which would
		// outlive every sandbox of the home.
		"--gofer-network-namespace=new",
		"--oci-seccomp",
	}
}

// gvisorNetwork is runsc's --network for a sandbox's network mode, given
// to `runsc run`: "sandbox" (gVisor's netstack on the netns's tap eth0)
// for a gateway; for "none" and "loopback" "none", which gives the Sentry
// only its own loopback interface (with "sandbox" an empty netns's lo,
// which is down, would give it none at all). Never "host".
func gvisorNetwork(mode string) string {
	if mode == "gateway" {
		return "--network=sandbox"
	}
	return "--network=none"
}

// probedPlatform is platform.json.
type probedPlatform struct {
	Runsc    string    `json:"runsc"`
	Size     int64     `json:"size"`
	ModTime  time.Time `json:"mtime"`
	Platform string    `json:"platform"`
}

// gvisorPlatform returns the platform to run on: forced (non-empty want,
// still probed so a bad choice fails here), cached for this binary, or the
// first of gvisorPlatforms that runs a process.
func gvisorPlatform(ctx context.Context, runsc, root, want string) (string, error) {
	fi, err := os.Stat(runsc)
	if err != nil {
		return "", err
	}
	cacheFile := filepath.Join(root, platformProbeFile)
	if want == "" {
		var p probedPlatform
		if b, err := os.ReadFile(cacheFile); err == nil && json.Unmarshal(b, &p) == nil &&
			p.Runsc == runsc && p.Size == fi.Size() && p.ModTime.Equal(fi.ModTime()) && p.Platform != "" {
			return p.Platform, nil
		}
	}
	candidates := gvisorPlatforms
	if want != "" {
		candidates = []string{want}
	}
	var errs []error
	for _, pl := range candidates {
		if err := probePlatform(ctx, runsc, pl); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pl, err))
			continue
		}
		if want == "" {
			b, _ := json.Marshal(probedPlatform{Runsc: runsc, Size: fi.Size(), ModTime: fi.ModTime(), Platform: pl})
			tmp := cacheFile + ".tmp"
			if os.WriteFile(tmp, b, 0o600) == nil {
				os.Rename(tmp, cacheFile)
			}
		}
		return pl, nil
	}
	return "", fmt.Errorf("%w: runsc %s runs no process on this host (%v)", errdefs.ErrFailedPrecondition, runsc, errors.Join(errs...))
}

// probePlatform runs /bin/true in a throwaway sandbox on platform pl
// (runsc do: the host's root read-only, no network).
func probePlatform(ctx context.Context, runsc, pl string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	root, err := os.MkdirTemp("", "agentkernel-runsc-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	cmd := exec.CommandContext(ctx, runsc, "--root", root, "--platform="+pl, "--network=none", "do", "/bin/true")
	cmd.WaitDelay = runtimeWaitDelay
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 512 {
			msg = msg[len(msg)-512:]
		}
		return fmt.Errorf("%v: %s", err, msg)
	}
	return nil
}

// checkGVisor finds runsc and its platform (see Backend.check).
func (b *Backend) checkGVisor(ctx context.Context) (*runc, error) {
	path, err := findRunsc(b.opts.Runtime, b.opts.RunscCache)
	if err != nil {
		return nil, fmt.Errorf("%w: runsc not found in %s or PATH (run scripts/runsc.sh): %v",
			errdefs.ErrFailedPrecondition, b.runscCache(), err)
	}
	if err := os.MkdirAll(b.opts.RuntimeRoot, 0o700); err != nil {
		return nil, fmt.Errorf("creating runtime root: %w", err)
	}
	pl, err := gvisorPlatform(ctx, path, b.opts.RuntimeRoot, b.opts.Platform)
	if err != nil {
		return nil, err
	}
	return &runc{path: path, root: b.opts.RuntimeRoot, flags: gvisorFlags(pl), platform: pl}, nil
}

func (b *Backend) runscCache() string {
	if b.opts.RunscCache != "" {
		return b.opts.RunscCache
	}
	return DefaultRunscCache
}

// gvisorErrnoSyscalls are the syscalls whose errno runsc cannot return and
// the agent's filter can (see gvisorSeccomp), by the profiles' names.
var gvisorErrnoSyscalls = map[string]uint32{"clone3": unix.SYS_CLONE3}

// gvisorSeccomp says how the bundle's seccomp profile is enforced on
// gVisor, or refuses it (fail closed). runsc --oci-seccomp enforces the
// profile inside the Sentry, but answers every SCMP_ACT_ERRNO with EPERM,
// whatever errno the rule names (gVisor issue 14688). Both our profiles
// deny clone3 with ENOSYS, and glibc creates threads with clone3 and falls
// back to clone only on ENOSYS: with EPERM no thread could start. So every
// unconditional ERRNO rule with another errno is handed to the guest agent
// (--seccomp-errno, the returned argument), whose own filter answers those
// syscalls with their errno, while runsc's still denies them. Anything
// else runsc cannot express as written (a non-EPERM errno on a rule with
// argument conditions, a default errno other than EPERM, a syscall not in
// gvisorErrnoSyscalls) is refused, naming the rule.
func gvisorSeccomp(sc *specs.LinuxSeccomp) (string, error) {
	refuse := func(what string) (string, error) {
		return "", fmt.Errorf("%w: the gvisor backend cannot enforce this seccomp profile as written: %s "+
			"(runsc answers every denied syscall with EPERM, gVisor issue 14688)", errdefs.ErrFailedPrecondition, what)
	}
	if sc == nil {
		return refuse("no profile")
	}
	if sc.DefaultAction != specs.ActErrno || (sc.DefaultErrnoRet != nil && *sc.DefaultErrnoRet != uint(unix.EPERM)) {
		return refuse(fmt.Sprintf("default action %s", sc.DefaultAction))
	}
	var rules []string
	for _, r := range sc.Syscalls {
		switch r.Action {
		case specs.ActAllow, specs.ActKill, specs.ActTrap:
			continue
		case specs.ActErrno:
		default:
			return refuse(fmt.Sprintf("action %s for %v", r.Action, r.Names))
		}
		if r.ErrnoRet == nil || *r.ErrnoRet == uint(unix.EPERM) {
			continue
		}
		if len(r.Args) > 0 {
			return refuse(fmt.Sprintf("errno %d for %v under argument conditions", *r.ErrnoRet, r.Names))
		}
		for _, n := range r.Names {
			nr, ok := gvisorErrnoSyscalls[n]
			if !ok {
				return refuse(fmt.Sprintf("errno %d for %s", *r.ErrnoRet, n))
			}
			rules = append(rules, fmt.Sprintf("%d:%d", nr, *r.ErrnoRet))
		}
	}
	return strings.Join(rules, ","), nil
}

// gvisorBundle adapts a generated bundle to runsc: the agent applies the
// errnos runsc cannot (gvisorSeccomp).
func gvisorBundle(gen *specs.Spec) error {
	errnos, err := gvisorSeccomp(gen.Linux.Seccomp)
	if err != nil {
		return err
	}
	if errnos != "" {
		gen.Process.Args = append(gen.Process.Args, "--seccomp-errno", errnos)
	}
	return nil
}

// gvisorInstance is a runsc sandbox: an instance without the runc-only
// extras (host-side host name, in-place resize).
type gvisorInstance struct{ in *instance }

var (
	_ backend.Instance     = gvisorInstance{}
	_ backend.Pauser       = gvisorInstance{}
	_ backend.Checkpointer = gvisorInstance{}
)

func (g gvisorInstance) DialAgent(ctx context.Context) (net.Conn, error) { return g.in.DialAgent(ctx) }
func (g gvisorInstance) Exited() <-chan struct{}                         { return g.in.Exited() }
func (g gvisorInstance) ExitError() error                                { return g.in.ExitError() }
func (g gvisorInstance) Stop(ctx context.Context) error                  { return g.in.Stop(ctx) }
func (g gvisorInstance) Pause(ctx context.Context) error                 { return g.in.Pause(ctx) }

// probeGVisor is Probe for the gvisor flavor: root, runsc (where it was
// found and its version), the platform it runs on, and overlayfs.
func (b *Backend) probeGVisor(ctx context.Context) []api.DoctorCheck {
	var checks doctorChecks
	add := checks.add
	add("gvisor: root", os.Geteuid() == 0, fmt.Sprintf("euid %d", os.Geteuid()), "run the agentkernel daemon as root")
	path, err := findRunsc(b.opts.Runtime, b.opts.RunscCache)
	if err != nil {
		add("gvisor: runsc", false, err.Error(), "run scripts/runsc.sh (builds runsc into "+b.runscCache()+"), or install runsc in PATH")
		add("gvisor: platform", false, "no runsc", "install runsc first")
	} else {
		out, verr := exec.CommandContext(ctx, path, "--version").CombinedOutput()
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		add("gvisor: runsc", verr == nil, path+": "+first, "reinstall runsc; `"+path+" --version` fails")
		if err := b.check(ctx); err != nil {
			add("gvisor: platform", false, err.Error(),
				"gVisor needs systrap or ptrace to work on this host (a kernel with seccomp and ptrace allowed); try AGENTKERNEL_GVISOR_PLATFORM=ptrace")
		} else {
			how := "probed: " + strings.Join(gvisorPlatforms, ", then ")
			if b.opts.Platform != "" {
				how = "forced, and probed"
			}
			add("gvisor: platform", true, b.runtime().platform+" ("+how+")", "")
		}
	}
	fs, _ := os.ReadFile("/proc/filesystems")
	add("gvisor: overlayfs", strings.Contains(string(fs), "\toverlay\n"), "needed for imported images", "modprobe overlay")
	checks = append(checks, probeDisks("gvisor")...)
	return checks
}
