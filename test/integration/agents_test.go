package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/agents"
	"github.com/agentkernel/agentkernel/internal/netgw/dnstest"
	"github.com/agentkernel/agentkernel/internal/testutil"
	"github.com/agentkernel/agentkernel/test/fakemodel"
)

// The agents' end-to-end tests run each real agent CLI, from its image
// (built by scripts/agent-images.sh into a machine-wide cache home, copied
// here by hard links), in a sandbox of a daemon that lives in a world
// namespace. There the vendors' API hosts resolve to a fake model server
// (test/fakemodel) serving HTTPS with the world's CA, which the gateways
// trust for the hosts they intercept. The agent's key is bound as a secret:
// the fake must receive it in the vendor's header while the sandbox holds
// only a placeholder.

// agentImagesHome is where scripts/agent-images.sh built the images.
func agentImagesHome() string {
	if h := os.Getenv("AK_AGENT_IMAGES_HOME"); h != "" {
		return h
	}
	return "/var/cache/agentkernel/agents-home"
}

// apiHosts are the hosts the fake model answers as, with every other
// host an agent may try resolving to nothing.
var apiHosts = []string{"api.anthropic.com", "api.openai.com", "generativelanguage.googleapis.com"}

// agentWorld is a world namespace with the fake model and a daemon whose
// image store holds the agent images.
type agentWorld struct {
	*netWorld
	fake *fakemodel.Server
}

const (
	agentFile    = "hello.txt"
	agentContent = "written by the agent\n"
	agentFinal   = "All done: hello.txt is written."
)

func newAgentWorld(t *testing.T, serveArgs ...string) *agentWorld {
	t.Helper()
	src := filepath.Join(agentImagesHome(), "images")
	for _, a := range agents.All() {
		if !imageInStore(src, a.Image()) {
			t.Skipf("the agent images are not built: run scripts/agent-images.sh (no %s in %s)", a.Image(), src)
		}
	}
	w := &agentWorld{netWorld: &netWorld{e: newEnv(t), ns: testutil.NewNetNS(t)}}
	w.fake = fakemodel.New(fakemodel.Script{FilePath: agentFile, FileContent: agentContent, FinalText: agentFinal, Dir: agents.Workdir})
	caCert, caKey := testCA(t)
	caFile := filepath.Join(t.TempDir(), "world-ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o644)
	leaf := testLeaf(t, caCert, caKey, apiHosts...)
	var dnsAddr netip.AddrPort
	w.inWorld(t, func() {
		for _, args := range [][]string{{"link", "set", "lo", "up"}, {"route", "add", "local", "203.0.113.0/24", "dev", "lo"}} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %v: %v %s", args, err, out)
			}
		}
		serve(t, tlsListen(t, allowedIP+":443", leaf), w.fake)
		serve(t, listen(t, allowedIP+":80"), fakeNPMRegistry(t))
		names := map[string][]netip.Addr{"registry.npmjs.org": {netip.MustParseAddr(allowedIP)}}
		for _, h := range apiHosts {
			names[h] = []netip.Addr{netip.MustParseAddr(allowedIP)}
		}
		dnsAddr = dnstest.Start(t, names).Addr
	})
	os.WriteFile(filepath.Join(w.e.home, "daemon.toml"), []byte(fmt.Sprintf(
		"[network]\nresolvers = [%q]\nupstream_ca_files = [%q]\n", dnsAddr.String(), caFile)), 0o600)
	// The images, by hard links: layers are read-only lower directories.
	if out, err := exec.Command("cp", "-al", src, filepath.Join(w.e.home, "images")).CombinedOutput(); err != nil {
		t.Fatalf("copying the agent images: %v %s", err, out)
	}
	w.startDaemon(t, serveArgs...)
	return w
}

// imageInStore reports whether the image store at dir names image (or
// image:latest).
func imageInStore(dir, image string) bool {
	ents, err := os.ReadDir(filepath.Join(dir, "images"))
	if err != nil {
		return false
	}
	for _, e := range ents {
		var rec struct {
			Name string `json:"name"`
		}
		if b, err := os.ReadFile(filepath.Join(dir, "images", e.Name())); err == nil && json.Unmarshal(b, &rec) == nil &&
			(rec.Name == image || rec.Name == image+":latest") {
			return true
		}
	}
	return false
}

// TestAgents: each agent runs unattended on a task, writes the file it is
// told to in /workspace, and its work comes back as a branch of the host
// repository; the fake model got the real key in the vendor's header, and
// nothing in the sandbox holds it.
func TestAgents(t *testing.T) {
	requireEnv(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git (scripts/setup.sh installs it)")
	}
	w := newAgentWorld(t)
	t.Run("CreateDiffExport", func(t *testing.T) { agentCreateDiffExport(t, w) })
	wantHeader := map[string]string{"x-api-key": "x-api-key", "Authorization": "authorization", "x-goog-api-key": "x-goog-api-key"}
	for _, a := range agents.All() {
		t.Run(a.Name, func(t *testing.T) {
			proj := gitProject(t)
			var kb [12]byte
			rand.Read(kb[:])
			key := "sk-test-" + a.Name + "-" + hex.EncodeToString(kb[:])
			name := "it-agent-" + a.Name
			before := len(w.fake.Requests())
			started := time.Now()
			r := w.e.akEnv(t, []string{a.Key.Vars[0] + "=" + key}, "run", "--keep", "--name", name, "--agent", a.Name, "--dir", proj, "--",
				"Create the file "+agentFile+" in the current directory with the text: "+strings.TrimSpace(agentContent))
			t.Cleanup(func() { w.e.ak(t, "sandbox", "remove", name) })
			reqs := w.fake.Requests()[before:]
			if len(reqs) > 0 {
				// docs/BENCHMARKS.md quotes these ("agents").
				t.Logf("first model request %v after run started; run took %v in all",
					reqs[0].Time.Sub(started).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
			}
			if r.code != 0 {
				t.Fatalf("the agent failed: %v\nfake model errors: %v\nrequests: %d", r, w.fake.Errors(), len(reqs))
			}
			if !strings.Contains(r.stdout, agentFinal) {
				t.Errorf("the agent's final message is not in its output: %q", r.stdout)
			}
			// The file in the sandbox and in the returned branch.
			if got := w.e.ok(t, "exec", name, "--", "cat", agents.Workdir+"/"+agentFile).stdout; got != agentContent {
				t.Errorf("%s in the sandbox: %q", agentFile, got)
			}
			branch := "agentkernel/" + name
			show, err := exec.Command("git", "-C", proj, "show", branch+":"+agentFile).CombinedOutput()
			if err != nil || string(show) != agentContent {
				t.Errorf("%s on branch %s: %q %v (stderr of run: %s)", agentFile, branch, show, err, r.stderr)
			}
			if st, _ := exec.Command("git", "-C", proj, "status", "--porcelain").CombinedOutput(); len(st) != 0 {
				t.Errorf("the host working tree changed: %s", st)
			}
			// The key reached the fake in the vendor's header, and only there.
			found := false
			for _, k := range w.fake.KeyHeaders() {
				if k.Key == key {
					found = true
					if k.Header != wantHeader[a.Key.Header] {
						t.Errorf("the key arrived in %s, want %s", k.Header, a.Key.Header)
					}
				}
			}
			if !found {
				t.Errorf("the fake model never received the key; it saw %+v", w.fake.KeyHeaders())
			}
			// Nothing in the sandbox holds it: files, environments, command
			// lines. The key reaches the check on stdin, into a file it
			// leaves out, so that its own command line does not hold it.
			check := "cat > /dev/shm/.pattern; " +
				"grep -rlF -f /dev/shm/.pattern / --exclude-dir=proc --exclude-dir=sys --exclude-dir=shm 2>/dev/null; " +
				"for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do grep -lF -f /dev/shm/.pattern $f 2>/dev/null; done; rm /dev/shm/.pattern; true"
			if out := w.e.akIn(t, strings.NewReader(key+"\n"), "exec", "-i", "--user", "0", name, "--", "sh", "-c", check).stdout; strings.TrimSpace(out) != "" {
				t.Errorf("the key is in the sandbox: %s", out)
			}
			// Telemetry, update checks and the like are off: the agent
			// asked its gateway for nothing it was refused.
			if denied := strings.TrimSpace(w.e.ok(t, "audit", name, "--denied").stdout); denied != "" && strings.Count(denied, "\n") > 0 {
				t.Errorf("the agent tried to reach what its policy refuses:\n%s", denied)
			}
			if env := w.e.ok(t, "exec", name, "--", "printenv", a.Key.Vars[0]).stdout; strings.Contains(env, key) || !strings.Contains(env, "placeholder") {
				t.Errorf("$%s in the sandbox: %q", a.Key.Vars[0], env)
			}
		})
	}
}

// agentCreateDiffExport: a sandbox made with create --agent --dir holds a
// copy of the project; what the agent changes shows in sandbox diff, and
// sandbox export --branch makes the branch on demand.
func agentCreateDiffExport(t *testing.T, w *agentWorld) {
	proj := gitProject(t)
	name := "it-agent-kept"
	keyEnv := []string{agents.Claude.Key.Vars[0] + "=sk-test-kept"}
	if r := w.e.akEnv(t, keyEnv, "sandbox", "create", name, "--agent", "claude", "--dir", proj); r.code != 0 {
		t.Fatalf("create --agent: %v", r)
	}
	t.Cleanup(func() { w.e.ak(t, "sandbox", "remove", name) })
	if got := w.e.ok(t, "exec", name, "--", "cat", agents.Workdir+"/README.md").stdout; got != "# a project\n" {
		t.Fatalf("the project copy: %q", got)
	}
	argv := agents.Claude.Unattended([]string{"Create the file " + agentFile})
	if r := w.e.akEnv(t, nil, append([]string{"exec", name, "--"}, argv...)...); r.code != 0 {
		t.Fatalf("the agent in a kept sandbox: %v", r)
	}
	d := w.e.ok(t, "sandbox", "diff", name).stdout
	if !strings.Contains(d, "+++ b/"+agentFile) || !strings.Contains(d, "+"+strings.TrimSpace(agentContent)) {
		t.Errorf("sandbox diff:\n%s", d)
	}
	w.e.ok(t, "sandbox", "export", name, "--branch", "agentkernel/on-demand")
	if show, err := exec.Command("git", "-C", proj, "show", "agentkernel/on-demand:"+agentFile).CombinedOutput(); err != nil || string(show) != agentContent {
		t.Errorf("the exported branch: %q %v", show, err)
	}
}

// fakeNPMRegistry serves one package, left-pad 1.0.0, over plain HTTP as
// registry.npmjs.org: its metadata and its tarball, made here.
func fakeNPMRegistry(t *testing.T) http.Handler {
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{
		"package/package.json": `{"name":"left-pad","version":"1.0.0","main":"index.js"}`,
		"package/index.js":     "module.exports = (s, n) => String(s).padStart(n);\n",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	sum := sha512.Sum512(tgz.Bytes())
	integrity := "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/left-pad":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"name":"left-pad","dist-tags":{"latest":"1.0.0"},"versions":{"1.0.0":{"name":"left-pad","version":"1.0.0",`+
				`"dist":{"tarball":"http://registry.npmjs.org/left-pad/-/left-pad-1.0.0.tgz","integrity":%q}}}}`, integrity)
		case "/left-pad/-/left-pad-1.0.0.tgz":
			w.Write(tgz.Bytes())
		default:
			http.NotFound(w, r)
		}
	})
}

// TestAgentImageBuildNetwork: a Dockerfile on the agents' Node.js base
// runs npm install, which reaches npm's registry (here the world's) only
// with the build's npm preset, through the step's gateway; without a
// policy the step has no network.
func TestAgentImageBuildNetwork(t *testing.T) {
	requireEnv(t)
	w := newAgentWorld(t)
	base := agents.Chain(agents.Claude)[1].Name
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+base+"\nWORKDIR /app\n"+
		"RUN npm install --fetch-retries=0 --fetch-timeout=5000 --registry http://registry.npmjs.org/ left-pad && node -e 'console.log(require(\"left-pad\")(\"x\", 3))'\n"), 0o644)
	t.Cleanup(func() { w.e.ak(t, "image", "rm", "it-npm-on"); w.e.ak(t, "image", "rm", "it-npm-off") })
	if r := w.e.akEnv(t, nil, "build", "-q", "--no-cache", "-t", "it-npm-off", dir); r.code == 0 {
		t.Errorf("npm install without a build policy reached the network: %v", r)
	}
	if r := w.e.akEnv(t, nil, "build", "-q", "--no-cache", "--preset", "npm", "-t", "it-npm-on", dir); r.code != 0 {
		t.Fatalf("npm install with --preset npm: %v", r)
	}
	if got := w.e.ok(t, "run", "--image", "it-npm-on", "--", "ls", "/app/node_modules/left-pad").stdout; !strings.Contains(got, "index.js") {
		t.Errorf("the installed package: %q", got)
	}
}

// gitProject is a fresh git repository with one commit.
func gitProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "init"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	os.WriteFile(filepath.Join(dir, "README.md"), []byte("# a project\n"), 0o644)
	for _, args := range [][]string{{"add", "README.md"}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "readme"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	return dir
}
