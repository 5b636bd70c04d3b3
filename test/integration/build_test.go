package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/debootstrap"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// buildTimeout bounds one Debian build: a cold download and install take
// about a minute here; the package download is cached in
// /var/cache/agentkernel across runs, so later runs only install.
const buildTimeout = 10 * time.Minute

// akLong runs the CLI like ak, with a longer deadline.
func (e *env) akLong(t *testing.T, d time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("agentkernel %s: still running after %v\nstderr: %s", strings.Join(args, " "), d, errb.String())
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("agentkernel %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// requireDebian skips t when a Debian build cannot run here: no
// debootstrap, or no way to reach the Debian archive the daemon would use.
func requireDebian(t *testing.T) {
	t.Helper()
	requireEnv(t)
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Skip("debootstrap is not installed (scripts/setup.sh installs it)")
	}
	mirror := debootstrap.HostMirror("/etc/apt")
	c := &http.Client{Timeout: 15 * time.Second}
	resp, err := c.Head(mirror + "/dists/bookworm/InRelease")
	if err != nil {
		t.Skipf("the Debian archive %s is unreachable: %v", mirror, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Skipf("the Debian archive %s answered %s", mirror, resp.Status)
	}
}

// TestDebianBuild builds one Debian image with debootstrap and runs
// python3 in a sandbox from it; then checks that bad builds fail clearly
// and leave nothing behind.
func TestDebianBuild(t *testing.T) {
	requireDebian(t)
	e := shared
	const name = "it-debian-py"
	e.ak(t, "image", "rm", name)
	t.Cleanup(func() { e.ak(t, "image", "rm", name) })

	start := time.Now()
	r := e.akLong(t, buildTimeout, "--json", "image", "build", "--debian", "bookworm", "--packages", "python3", "-t", name)
	if r.code != 0 {
		t.Fatalf("%v", r)
	}
	t.Logf("built %s in %v", name, time.Since(start).Round(time.Second))
	var info api.ImageInfo
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
		t.Fatalf("image build --json: %v\n%s", err, r.stdout)
	}
	if info.Name != name || info.Size < 50<<20 || info.Source != "debian:bookworm+python3" {
		t.Errorf("built image %+v", info)
	}

	r = e.ok(t, "run", "--image", name, "--", "python3", "-c",
		"import platform, sys; print(platform.freedesktop_os_release()['VERSION_CODENAME'], sys.version_info[0])")
	if r.stdout != "bookworm 3\n" {
		t.Errorf("python3 in the Debian sandbox: %v", r)
	}
	// The host's name stays out of the image and the .debs are gone (the
	// sandbox's /etc/resolv.conf is the network's own, so it says nothing
	// about the image; internal/debootstrap's tests check that one).
	r = e.ok(t, "run", "--image", name, "--", "sh", "-c",
		"test -e /etc/hostname && echo /etc/hostname; ls /var/cache/apt/archives | grep -c '[.]deb$'; true")
	if r.stdout != "0\n" {
		t.Errorf("left in the image: %q", r.stdout)
	}

	// The name is taken: refused at once, nothing built.
	start = time.Now()
	r = e.ak(t, "image", "build", "--debian", "bookworm", "-t", name)
	if r.code == 0 || !strings.Contains(r.stderr, "already exists") || time.Since(start) > 10*time.Second {
		t.Errorf("rebuild of an existing name (%v): %v", time.Since(start), r)
	}
	// Bad input never reaches debootstrap.
	for _, args := range [][]string{
		{"--debian", "bookworm", "--packages", "--no-check-gpg"},
		{"--debian", "../etc"},
		{"--debian", "bookworm", "--mirror", "file:///etc"},
		{"--packages", "python3"},
	} {
		r := e.ak(t, append([]string{"image", "build", "-t", "it-debian-bad"}, args...)...)
		if r.code == 0 || r.stderr == "" {
			t.Errorf("%v", r)
		}
	}
	// A package the archive does not have: debootstrap's own message.
	r = e.akLong(t, buildTimeout, "image", "build", "--debian", "bookworm", "--packages", "no-such-package-agentkernel", "-t", "it-debian-bad")
	if r.code == 0 || !strings.Contains(r.stderr, "no-such-package-agentkernel") {
		t.Errorf("unknown package: %v", r)
	}
	if out := e.ok(t, "image", "list").stdout; strings.Contains(out, "it-debian-bad") {
		t.Errorf("a failed build left an image:\n%s", out)
	}
	if left, _ := os.ReadDir(filepath.Join(e.home, "build")); len(left) != 0 {
		t.Errorf("build directories left: %v", left)
	}
}

// TestConfigCreateAndRun applies an agentkernel.toml to a real sandbox:
// resources and profile from the file, [[files]] copied in, init_script
// run as root after them; run reads ./agentkernel.toml by itself; a failing
// init_script removes the sandbox; settings that cannot be enforced are
// refused before anything is created.
func TestConfigCreateAndRun(t *testing.T) {
	requireEnv(t)
	e := shared
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("conf/app.env", "GREETING=hello\n")
	write("agentkernel.toml", `[sandbox]
name = "it-config"
init_script = '''
set -e
. /root/app/app.env
echo "$GREETING from init as $(id -u)" > /root/init.out
'''

[resources]
vcpus = 1
memory_mb = 300

[security]
profile = "moderate"
network = false

[[files]]
source = "conf/app.env"
dest = "/root/app/app.env"
mode = "0600"
`)
	r := e.ok(t, "create", "--config", filepath.Join(dir, "agentkernel.toml"))
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", "it-config") })
	if r.stdout != "it-config\n" {
		t.Errorf("create: %v", r)
	}
	info := e.info(t, "it-config")
	if info.MemoryMB != 300 || info.VCPUs != 1 || info.Profile != "moderate" {
		t.Errorf("sandbox %+v", info)
	}
	r = e.ok(t, "exec", "it-config", "--", "sh", "-c", "cat /root/init.out; stat -c %a /root/app/app.env")
	if r.stdout != "hello from init as 0\n600\n" {
		t.Errorf("files and init_script: %v", r)
	}

	// run in the project directory reads ./agentkernel.toml.
	cmd := e.command(context.Background(), "run", "--", "cat", "/root/init.out")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil || string(out) != "hello from init as 0\n" {
		t.Errorf("run with ./agentkernel.toml: %q %v", out, err)
	}

	// A failing init_script: create fails and the sandbox is gone.
	write("bad/agentkernel.toml", "[sandbox]\ninit_script = \"echo about to fail; exit 4\"\n")
	r = e.ak(t, "create", "it-config-bad", "--config", filepath.Join(dir, "bad/agentkernel.toml"))
	if r.code == 0 || !strings.Contains(r.stderr, "init_script failed with exit code 4") || !strings.Contains(r.stderr, "about to fail") {
		t.Errorf("failing init_script: %v", r)
	}
	if r := e.ak(t, "sandbox", "info", "it-config-bad"); r.code == 0 {
		t.Errorf("the sandbox of a failed init_script exists: %v", r)
	}

	// Refused before anything exists.
	write("refused/agentkernel.toml", "[sandbox]\nname = \"it-config-refused\"\n[ports]\n8080 = 80\n")
	r = e.ak(t, "create", "--config", filepath.Join(dir, "refused/agentkernel.toml"))
	if r.code == 0 || !strings.Contains(r.stderr, "[ports]") {
		t.Errorf("unenforceable settings: %v", r)
	}
	if r := e.ak(t, "sandbox", "info", "it-config-refused"); r.code == 0 {
		t.Errorf("a refused config created a sandbox: %v", r)
	}
}
