package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/config"
	"github.com/agentkernel/agentkernel/internal/httpapi"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// The file operations config setup needs, on the host directory that
// stands for the sandbox.
func (s *hostService) sandboxPath(name, p string) (string, error) {
	if _, err := s.get(name); err != nil {
		return "", err
	}
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "..") {
		return "", fmt.Errorf("%w: path %q", errdefs.ErrInvalidArgument, p)
	}
	return filepath.Join(s.root(name), p), nil
}

func (s *hostService) Mkdir(ctx context.Context, name, p string) error {
	hp, err := s.sandboxPath(name, p)
	if err != nil {
		return err
	}
	return os.MkdirAll(hp, 0o755)
}

func (s *hostService) WriteFile(ctx context.Context, name, p string, mode uint32, r io.Reader) error {
	hp, err := s.sandboxPath(name, p)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if err := os.WriteFile(hp, b, os.FileMode(mode)); err != nil {
		return err
	}
	return os.Chmod(hp, os.FileMode(mode))
}

// writeProject makes a project directory with an agentkernel.toml and
// other files, and returns it.
func writeProject(t *testing.T, toml string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, content := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, n), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if toml != "" {
		if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const projectToml = `[sandbox]
name = "proj"
base_image = "deb-py"
init_script = "echo init ran > init-marker; cat etc/app/env > copied"

[resources]
vcpus = 2
memory_mb = 768

[security]
profile = "restrictive"

[[files]]
source = "conf/app.env"
dest = "/etc/app/env"
mode = "0600"
`

func TestCreateWithConfig(t *testing.T) {
	t.Setenv("AGENTKERNEL_HOME", t.TempDir())
	svc, sock := startDaemon(t)
	dir := writeProject(t, projectToml, map[string]string{"conf/app.env": "KEY=1\n"})

	// NAME comes from the file; flags win over it.
	out, errOut, code := cli(t, nil, "--socket", sock, "create", "--config", filepath.Join(dir, config.FileName), "--memory-mb", "1024")
	if code != 0 || out != "proj\n" {
		t.Fatalf("create: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	req := svc.createdReqs()[0]
	if req.Name != "proj" || req.Image != "deb-py" || req.Profile != "restrictive" || req.VCPUs != 2 || req.MemoryMB != 1024 {
		t.Errorf("request %+v", req)
	}
	root := svc.root("proj")
	if fi, err := os.Stat(filepath.Join(root, "etc/app/env")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("copied file: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "copied")); string(b) != "KEY=1\n" {
		t.Errorf("init_script did not run after the copy: %q", b)
	}
	if ex := svc.execOpts(); len(ex) != 1 || ex[0].User != "0" || ex[0].Argv[0] != "/bin/sh" {
		t.Errorf("init exec %+v", ex)
	}

	// A failing init_script: create fails, says why, removes the sandbox.
	bad := writeProject(t, "[sandbox]\ninit_script = \"echo setting up; echo broken >&2; exit 3\"\n", nil)
	out, errOut, code = cli(t, nil, "--socket", sock, "create", "broken", "--config", filepath.Join(bad, config.FileName))
	if code == 0 || out != "" || !strings.Contains(errOut, "init_script failed with exit code 3") ||
		!strings.Contains(errOut, "broken") || !strings.Contains(errOut, "setting up") {
		t.Errorf("failing init: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if svc.has("broken") {
		t.Error("the sandbox of a failed init_script was kept")
	}

	// Refused before anything is created: a source outside the project,
	// an unenforceable setting, --no-start with setup, two sources.
	before := len(svc.createdReqs())
	outside := writeProject(t, "[[files]]\nsource = \"../../../../../../../../etc/passwd\"\ndest = \"/x\"\n", nil)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "x", "--config", filepath.Join(outside, config.FileName)}, "must be inside"},
		{[]string{"create", "x", "--config", writeProject(t, "[security]\nmount_cwd = true\n", nil) + "/" + config.FileName}, "security.mount_cwd"},
		{[]string{"create", "x", "--no-start", "--config", filepath.Join(dir, config.FileName)}, "--no-start"},
		{[]string{"create", "x", "--config", filepath.Join(dir, config.FileName), "--template", "go"}, "cannot be combined"},
		{[]string{"create", "--config", filepath.Join(bad, config.FileName)}, "missing the sandbox name"},
		{[]string{"create", "x", "--config", filepath.Join(dir, "nope.toml")}, "does not exist"},
	} {
		_, errOut, code := cli(t, nil, append([]string{"--socket", sock}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: code %d, stderr %q, want %q", c.args, code, errOut, c.want)
		}
	}
	if n := len(svc.createdReqs()); n != before {
		t.Errorf("%d sandboxes were created by refused commands", n-before)
	}

	// Without --config, create does not read ./agentkernel.toml.
	t.Chdir(dir)
	if _, errOut, code := cli(t, nil, "--socket", sock, "create", "plain"); code != 0 {
		t.Fatalf("plain create: %d %s", code, errOut)
	}
	if req := svc.createdReqs()[len(svc.createdReqs())-1]; req.Image != "" || req.VCPUs != 0 {
		t.Errorf("create read ./agentkernel.toml: %+v", req)
	}
}

func TestCreateWithTemplate(t *testing.T) {
	t.Setenv("AGENTKERNEL_HOME", t.TempDir())
	svc, sock := startDaemon(t)
	if _, errOut, code := cli(t, nil, "--socket", sock, "create", "b", "--template", "base"); code != 0 {
		t.Fatalf("base template: %s", errOut)
	}
	// A saved template, then create from it.
	dir := writeProject(t, "# big python\n[sandbox]\nbase_image = \"python:3.13\"\n[resources]\nmemory_mb = 2048\n", nil)
	if out, errOut, code := cli(t, nil, "template", "save", "bigpy", filepath.Join(dir, config.FileName)); code != 0 || out != "bigpy\n" {
		t.Fatalf("save: %d %q %q", code, out, errOut)
	}
	if _, errOut, code := cli(t, nil, "--socket", sock, "create", "p", "--template", "bigpy"); code != 0 {
		t.Fatalf("create from a saved template: %s", errOut)
	}
	reqs := svc.createdReqs()
	if reqs[0].Image != "" || reqs[1].Image != "python:3.13" || reqs[1].MemoryMB != 2048 {
		t.Errorf("requests %+v", reqs)
	}
	if _, errOut, code := cli(t, nil, "--socket", sock, "create", "q", "--template", "nope"); code == 0 || !strings.Contains(errOut, "no template") {
		t.Errorf("unknown template: %d %q", code, errOut)
	}
}

func TestTemplateCommands(t *testing.T) {
	home := t.TempDir()
	t.Setenv("AGENTKERNEL_HOME", home)
	out, _, code := cli(t, nil, "template", "list")
	for _, want := range []string{"python", "node", "go", "rust", "ruby", "java", "bash", "built-in"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("list lacks %s:\n%s", want, out)
		}
	}
	out, _, code = cli(t, nil, "template", "show", "python")
	if code != 0 || !strings.Contains(out, `base_image = "python:3.12-alpine"`) {
		t.Errorf("show: %d\n%s", code, out)
	}
	if _, err := config.Parse([]byte(out)); err != nil {
		t.Errorf("show prints an invalid file: %v", err)
	}
	if out, errOut, code := cli(t, strings.NewReader("[sandbox]\nruntime = \"node\"\n"), "template", "save", "mine", "-"); code != 0 || out != "mine\n" {
		t.Fatalf("save from stdin: %d %q", code, errOut)
	}
	if _, errOut, code := cli(t, strings.NewReader("[sandbox]\nruntime = \"go\"\n"), "template", "save", "mine", "-"); code == 0 || !strings.Contains(errOut, "--force") {
		t.Errorf("save over: %d %q", code, errOut)
	}
	if _, errOut, code := cli(t, strings.NewReader("[oops]\n"), "template", "save", "other", "-"); code == 0 || !strings.Contains(errOut, `unknown key "oops"`) {
		t.Errorf("save of a bad file: %d %q", code, errOut)
	}
	out, _, _ = cli(t, nil, "--json", "template", "list")
	var list []templateInfo
	if err := json.Unmarshal([]byte(out), &list); err != nil || list[len(list)-1].Name != "mine" || list[len(list)-1].Image != "node:22-alpine" || list[len(list)-1].Builtin {
		t.Errorf("json list: %v %+v", err, list)
	}
	if fi, err := os.Stat(filepath.Join(home, "templates", "mine.toml")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("saved file: %v", err)
	}
	if _, errOut, code := cli(t, nil, "template", "remove", "python"); code == 0 || !strings.Contains(errOut, "built-in") {
		t.Errorf("remove built-in: %d %q", code, errOut)
	}
	if out, _, code := cli(t, nil, "template", "rm", "mine"); code != 0 || out != "mine\n" {
		t.Errorf("remove: %d %q", code, out)
	}
}

func TestInit(t *testing.T) {
	t.Setenv("AGENTKERNEL_HOME", t.TempDir())
	dir := writeProject(t, "", map[string]string{"go.mod": "module x\n"})
	proj := filepath.Join(dir, "My Project!")
	os.Mkdir(proj, 0o755)
	os.WriteFile(filepath.Join(proj, "go.mod"), nil, 0o644)
	t.Chdir(proj)
	out, errOut, code := cli(t, nil, "init")
	p := filepath.Join(proj, config.FileName)
	if code != 0 || out != p+"\n" {
		t.Fatalf("init: %d %q %q", code, out, errOut)
	}
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sandbox.Name != "My-Project" || c.Image() != "golang:1.23-alpine" || c.Sandbox.InitScript == "" {
		t.Errorf("written config %+v", c.Sandbox)
	}
	if _, errOut, code := cli(t, nil, "init"); code == 0 || !strings.Contains(errOut, "--force") {
		t.Errorf("init over an existing file: %d %q", code, errOut)
	}
	if _, errOut, code := cli(t, nil, "init", "--force", "--template", "python", "--name", "api", "--agent", "codex"); code != 0 {
		t.Fatalf("init --force: %q", errOut)
	}
	c, err = config.Load(p)
	if err != nil || c.Sandbox.Name != "api" || c.Image() != "python:3.12-alpine" || c.Agent.Preferred != "codex" {
		t.Errorf("forced config %+v %v", c, err)
	}
	if _, errOut, code := cli(t, nil, "init", "--force", "--agent", "clippy"); code == 0 || !strings.Contains(errOut, "agent.preferred") {
		t.Errorf("bad agent: %d %q", code, errOut)
	}
	for dir, want := range map[string]string{"x": "x", "...": "my-sandbox", strings.Repeat("a", 80): strings.Repeat("a", 63), "a b/c": "a-b-c"} {
		if got := sandboxNameFor(dir); got != want {
			t.Errorf("sandboxNameFor(%q) = %q, want %q", dir, got, want)
		}
	}
}

// TestRunReadsConfig: run applies ./agentkernel.toml (as upstream), and
// --no-config skips it.
func TestRunReadsConfig(t *testing.T) {
	svc, sock := startDaemon(t)
	dir := writeProject(t, "[sandbox]\nbase_image = \"img:1\"\ninit_script = \"echo prepared > prep\"\n[[files]]\nsource = \"in.txt\"\ndest = \"/data/in.txt\"\n",
		map[string]string{"in.txt": "payload"})
	t.Chdir(dir)
	out, errOut, code := cli(t, nil, "--socket", sock, "run", "--keep", "--name", "r1", "--", "sh", "-c", "cat data/in.txt prep")
	if code != 0 || out != "payloadprepared\n" {
		t.Fatalf("run with ./agentkernel.toml: %d %q %q", code, out, errOut)
	}
	if req := svc.createdReqs()[0]; req.Image != "img:1" {
		t.Errorf("image %q", req.Image)
	}
	out, errOut, code = cli(t, nil, "--socket", sock, "run", "--no-config", "--", "true")
	if code != 0 {
		t.Fatalf("--no-config: %d %q %q", code, out, errOut)
	}
	if req := svc.createdReqs()[1]; req.Image != "" {
		t.Errorf("--no-config still applied the file: %+v", req)
	}
	// A broken file stops run, naming the file, the line and the escape hatch.
	os.WriteFile(filepath.Join(dir, config.FileName), []byte("[sandbox]\nimage = \"x\"\n"), 0o644)
	_, errOut, code = cli(t, nil, "--socket", sock, "run", "--", "true")
	if code != 125 || !strings.Contains(errOut, `line 2: unknown key "sandbox.image"`) || !strings.Contains(errOut, "--no-config") {
		t.Errorf("broken file: %d %q", code, errOut)
	}
}

// imagesService is hostService with a store that holds some images and a
// pull that records what it was asked for.
type imagesService struct {
	*hostService
	images []api.ImageInfo
	pulled []string
}

func (s *imagesService) ListImages(ctx context.Context) ([]api.ImageInfo, error) {
	return s.images, nil
}

func (s *imagesService) PullImage(ctx context.Context, req api.PullImageRequest, progress func(api.PullProgress)) (api.ImageInfo, error) {
	s.pulled = append(s.pulled, req.Image)
	if req.Image == "node:22-alpine" {
		return api.ImageInfo{}, fmt.Errorf("%w: registry unreachable", errdefs.ErrUnavailable)
	}
	return api.ImageInfo{Name: req.Image}, nil
}

// serveService serves svc on a Unix socket, as startDaemon does.
func serveService(t *testing.T, svc httpapi.Service) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httpapi.NewHandler(svc, httpapi.HandlerOptions{})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestRunImageDetection(t *testing.T) {
	hs := &hostService{dir: t.TempDir(), sandboxes: map[string]api.SandboxInfo{}}
	svc := &imagesService{hostService: hs, images: []api.ImageInfo{{Name: "host"}, {Name: "python:3.12-alpine"}}}
	sock := serveService(t, svc)
	t.Chdir(t.TempDir())
	image := func(args ...string) (string, string, int) {
		t.Helper()
		n := len(hs.createdReqs())
		_, errOut, code := cli(t, nil, append([]string{"--socket", sock, "run"}, args...)...)
		if len(hs.createdReqs()) == n {
			return "", errOut, code
		}
		return hs.createdReqs()[n].Image, errOut, code
	}
	// Detected and in the store: used.
	if img, errOut, _ := image("--", "python3", "-c", "1"); img != "python:3.12-alpine" {
		t.Errorf("python3 with the image stored: %q %s", img, errOut)
	}
	// Detected but not stored: the default, nothing pulled, nothing said.
	if img, errOut, code := image("--", "sh", "-c", "true"); img != "" || errOut != "" || code != 0 || len(svc.pulled) != 0 {
		t.Errorf("sh without alpine stored: %q %q %d pulled %v", img, errOut, code, svc.pulled)
	}
	// --image auto pulls.
	if img, errOut, _ := image("--image", "auto", "--", "cargo", "build"); img != "rust:1.85-alpine" || len(svc.pulled) != 1 {
		t.Errorf("auto: %q %s pulled %v", img, errOut, svc.pulled)
	}
	// A pull that fails: run fails, saying what was detected and why.
	img, errOut, code := image("--image", "auto", "--", "npm", "test")
	if code != 125 || img != "" || !strings.Contains(errOut, "node:22-alpine") || !strings.Contains(errOut, "the command npm") || !strings.Contains(errOut, "unreachable") {
		t.Errorf("failed pull: %q %d %q", img, code, errOut)
	}
	// Project files, when the command says nothing.
	os.WriteFile("requirements.txt", nil, 0o644)
	if img, _, _ := image("--", "true"); img != "python:3.12-alpine" {
		t.Errorf("python project: %q", img)
	}
	// An explicit image always wins.
	if img, _, _ := image("--image", "host", "--", "python3"); img != "host" {
		t.Errorf("explicit: %q", img)
	}
}
