package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// A file using every key this agentkernel enforces.
const full = `# a project
[sandbox]
name = "my-app"
runtime = "python"
base_image = "python:3.12-slim"
init_script = """
set -e
mkdir -p /workspace
"""

[agent]
preferred = "codex"
compatibility_mode = "native"

[resources]
vcpus = 2
memory_mb = 1024
disk_mb = 2048

[security]
profile = "restrictive"
network = false
mount_cwd = false
mount_home = false
pass_env = false
read_only = true
seccomp = "restrictive"

[security.domains]
allowlist_only = false

[[files]]
source = ".env"
dest = "/app/.env"

[[files]]
source = "conf/settings.json"
dest = "/etc/app/settings.json"
mode = "0600"
`

func TestParseFull(t *testing.T) {
	c, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.Sandbox.Name != "my-app" || c.Image() != "python:3.12-slim" || !strings.Contains(c.Sandbox.InitScript, "mkdir -p /workspace") {
		t.Errorf("sandbox: %+v", c.Sandbox)
	}
	req := c.Request()
	if req.Name != "my-app" || req.Image != "python:3.12-slim" || req.Profile != "restrictive" || req.VCPUs != 2 || req.MemoryMB != 1024 || req.DiskMB != 2048 {
		t.Errorf("request: %+v", req)
	}
	if len(c.Files) != 2 || c.Files[1].Mode != "0600" || c.Files[0].Dest != "/app/.env" {
		t.Errorf("files: %+v", c.Files)
	}
	if !c.NeedsRunning() {
		t.Error("NeedsRunning is false with files and an init script")
	}
}

// Upstream's example files: a base image, an agent, resources and a
// profile; and an agent example with a Dockerfile build and mounts (refused).
func TestParseUpstreamShapes(t *testing.T) {
	ok := "[sandbox]\nname = \"go-app\"\nbase_image = \"golang:1.23-alpine\"\n\n[agent]\npreferred = \"claude\"\n\n" +
		"[resources]\nvcpus = 1\nmemory_mb = 512\n\n[security]\nprofile = \"restrictive\"\n"
	c, err := Parse([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	if c.Image() != "golang:1.23-alpine" || c.Request().Profile != "restrictive" {
		t.Errorf("%+v", c)
	}
	agent := "[sandbox]\nname = \"claude-code-sandbox\"\n\n[build]\ndockerfile = \"Dockerfile\"\n\n[agent]\npreferred = \"claude\"\ncompatibility_mode = \"claude\"\n\n" +
		"[security]\nprofile = \"moderate\"\nnetwork = true\nmount_cwd = true\n"
	_, err = Parse([]byte(agent))
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Fatalf("agent example: %v, want ErrNotImplemented", err)
	}
	// network = true is the moderate profile's network here, so only these.
	for _, want := range []string{"[build]", "agent.compatibility_mode", "security.mount_cwd"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not name %s:\n%v", want, err)
		}
	}
}

func TestParseErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct{ doc, want string }{
		{"[sandbox]\nname = \"x\"\nbogus = 1\n", `line 3: unknown key "sandbox.bogus"`},
		{"[sandbox]\n[nonsense]\nx = 1\n", `unknown key "nonsense"`},
		{"[security.domains]\nallow = []\nextra = true\n", `line 3: unknown key "security.domains.extra"`},
		{"[[files]]\nsource = \"a\"\ndest = \"/a\"\nowner = \"root\"\n", `line 4: unknown key "files.owner"`},
		{"[resources]\nvcpus = \"two\"\n", "line 2: resources.vcpus: a TOML string where an integer belongs"},
		{"[security]\nnetwork = \"yes\"\n", "line 2: security.network: a TOML string where true or false belongs"},
		{"[sandbox]\nname = \"a\"\nname = \"b\"\n", "line 3"},
		{"[sandbox\n", "line 1"},
		{"[resources]\nmemory_mb = 99999999999999999999\n", "line 2"},
		{"[resources]\nvcpus = 0\n", "resources.vcpus 0"},
		{"[resources]\nmemory_mb = 8\n", "resources.memory_mb 8"},
		{"[resources]\ndisk_mb = 10\n", "resources.disk_mb 10"},
		{"[sandbox]\nname = \"../x\"\n", "sandbox.name"},
		{"[sandbox]\nruntime = \"cobol\"\n", "sandbox.runtime \"cobol\""},
		{"[sandbox]\nbase_image = \"--privileged\"\n", "sandbox.base_image"},
		{"[security]\nprofile = \"yolo\"\n", "security.profile \"yolo\""},
		{"[agent]\npreferred = \"clippy\"\n", "agent.preferred"},
		{"[[files]]\nsource = \"a\"\ndest = \"rel/path\"\n", "files[0].dest \"rel/path\" must be an absolute path"},
		{"[[files]]\nsource = \"a\"\ndest = \"/etc/../x\"\n", "files[0].dest"},
		{"[[files]]\ndest = \"/x\"\n", "files[0].source is missing"},
		{"[[files]]\nsource = \"a\"\ndest = \"/x\"\nmode = \"4755\"\n", "files[0].mode"},
		{"[[files]]\nsource = \"a\"\ndest = \"/x\"\nmode = \"rwx\"\n", "files[0].mode"},
		{"[security]\nseccomp = \"banana\"\n", "security.seccomp \"banana\""},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.doc))
		if err == nil {
			t.Errorf("%q: parsed", c.doc)
			continue
		}
		if !errors.Is(err, errdefs.ErrInvalidArgument) && !errors.Is(err, errdefs.ErrTooLarge) {
			t.Errorf("%q: %v is not ErrInvalidArgument", c.doc, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n got %v\nwant it to contain %q", c.doc, err, c.want)
		}
	}
}

// TestRefusals: each setting that cannot be enforced is refused by name,
// and the same key set to what we already do is accepted.
func TestRefusals(t *testing.T) {
	refused := []struct{ doc, want string }{
		{"[build]\ndockerfile = \"Dockerfile\"\n", "[build]"},
		{"[build]\n", "[build]"},
		{"[agent]\ncompatibility_mode = \"gemini\"\n", "agent.compatibility_mode"},
		{"[network]\nvsock_cid = 3\n", "network.vsock_cid"},
		{"[security]\nprofile = \"restrictive\"\nnetwork = true\n", "security.network = true"},
		{"[security]\nmount_cwd = true\n", "security.mount_cwd"},
		{"[security]\nmount_home = true\n", "security.mount_home"},
		{"[security]\npass_env = true\n", "security.pass_env"},
		{"[security]\nread_only = true\n", "security.read_only = true"},
		{"[security]\nprofile = \"restrictive\"\nread_only = false\n", "security.read_only = false"},
		{"[security]\nseccomp = \"ai-agent\"\n", "security.seccomp \"ai-agent\""},
		{"[security]\nseccomp = \"moderate\"\n", "security.seccomp \"moderate\""},
		{"[security]\nprofile = \"restrictive\"\nseccomp = \"default\"\n", "security.seccomp \"default\""},
		{"[security]\nseccomp = \"/etc/seccomp.json\"\n", "custom seccomp files"},
		{"[security]\nnetwork = false\n[security.domains]\nblock = [\"evil.com\"]\n", "[security.domains]"},
		{"[security.commands]\nblock = [\"curl\"]\n", "[security.commands]"},
		{"[ports]\n8080 = 80\n", "[ports]"},
	}
	for _, c := range refused {
		_, err := Parse([]byte(c.doc))
		if !errors.Is(err, errdefs.ErrNotImplemented) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want ErrNotImplemented naming %s", c.doc, err, c.want)
		}
	}
	accepted := []string{
		"[security]\nnetwork = false\nmount_cwd = false\nmount_home = false\npass_env = false\nread_only = false\n",
		"[security]\nprofile = \"restrictive\"\nread_only = true\nseccomp = \"strict\"\n",
		"[security]\nprofile = \"permissive\"\nseccomp = \"default\"\n",
		"[security.domains]\nallow = []\nblock = []\n[security.commands]\nallowlist_only = false\n",
		"[ports]\n",
		"[security]\nnetwork = true\n[security.domains]\nallow = [\"pypi.org\"]\nblock = [\"evil.com\"]\nallowlist_only = true\n",
		"[agent]\ncompatibility_mode = \"native\"\n",
		"",
	}
	for _, doc := range accepted {
		if _, err := Parse([]byte(doc)); err != nil {
			t.Errorf("%q: %v", doc, err)
		}
	}
	// A malformed value next to a refused one: the file is invalid, and
	// both are reported.
	_, err := Parse([]byte("[security]\nprofile = \"yolo\"\nmount_home = true\n"))
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "yolo") || !strings.Contains(err.Error(), "mount_home") {
		t.Errorf("mixed problems: %v", err)
	}
}

func TestImage(t *testing.T) {
	for doc, want := range map[string]string{
		"":                                  "",
		"[sandbox]\nruntime = \"base\"\n":   "",
		"[sandbox]\nruntime = \"node\"\n":   "node:22-alpine",
		"[sandbox]\nruntime = \"dotnet\"\n": "mcr.microsoft.com/dotnet/sdk:8.0",
		"[sandbox]\nruntime = \"go\"\nbase_image = \"golang:1.26\"\n": "golang:1.26",
	} {
		c, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if got := c.Image(); got != want {
			t.Errorf("%q: image %q, want %q", doc, got, want)
		}
	}
}

func TestRenderRoundTrip(t *testing.T) {
	c, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	configs := []*Config{c}
	for _, tpl := range Builtins() {
		configs = append(configs, tpl.Config)
	}
	odd := &Config{}
	odd.Sandbox.InitScript = "echo '''quoted'''\r\n\x01"
	odd.Sandbox.Name = "x"
	configs = append(configs, odd)
	for _, want := range configs {
		text := Render(want, "header line\nsecond")
		if !strings.HasPrefix(string(text), "# header line\n# second\n\n") {
			t.Errorf("header missing:\n%s", text)
		}
		got, err := Parse(text)
		if err != nil {
			t.Fatalf("re-parsing:\n%s\n%v", text, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip changed the config:\n%s\n got %+v\nwant %+v", text, got, want)
		}
	}
}
