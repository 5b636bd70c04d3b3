package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/config"
)

// Upstream's spellings reach the same commands and requests as ours
// (docs/COMPAT.md lists them; cmd/agentkernel's compat test checks the tree).
func TestUpstreamSpellings(t *testing.T) {
	svc, sock := startDaemon(t)
	_, errOut, code := cli(t, nil, "--socket", sock, "create", "dev", "-B", "docker", "-p", "0:80", "--no-start")
	if code != 0 || !strings.Contains(errOut, `backend "docker" is taken as container`) {
		t.Fatalf("create -B docker: %d %q", code, errOut)
	}
	if req := svc.createdReqs()[0]; req.Backend != "docker" || len(req.Publish) != 1 || req.Publish[0] != "0:80" {
		t.Fatalf("request %+v", req)
	}
	_, errOut, code = cli(t, nil, "--socket", sock, "create", "web", "-B", "gvisor", "--no-start")
	if code != 0 || errOut != "" {
		t.Fatalf("create -B gvisor: %d %q", code, errOut)
	}
	out, _, code := cli(t, nil, "--socket", sock, "sandbox", "exec-list", "dev")
	if code != 0 || !strings.Contains(out, "sleep 9") {
		t.Fatalf("sandbox exec-list: %d %q", code, out)
	}
	out, errOut, code = cli(t, nil, "--socket", sock, "sandbox", "exec-logs", "dev", "bg-1")
	if code != 0 || out != "out\n" || errOut != "err\n" {
		t.Fatalf("sandbox exec-logs: %d %q %q", code, out, errOut)
	}
	if _, _, code := cli(t, nil, "--socket", sock, "sandbox", "extend-ttl", "dev", "--by", "1h"); code != 0 {
		t.Fatalf("sandbox extend-ttl: %d", code)
	}
	// A sandbox keeps its backend: start -B checks it instead of choosing.
	_, errOut, code = cli(t, nil, "--socket", sock, "start", "dev", "-B", "firecracker")
	if code == 0 || !strings.Contains(errOut, "is on backend host, not microvm") {
		t.Fatalf("start -B firecracker: %d %q", code, errOut)
	}
	_, errOut, code = cli(t, nil, "--socket", sock, "start", "dev", "-B", "apple")
	if code == 0 || !strings.Contains(errOut, "only on macOS") {
		t.Fatalf("start -B apple: %d %q", code, errOut)
	}
}

func TestUpstreamRunFlags(t *testing.T) {
	svc, sock := startDaemon(t)
	t.Chdir(t.TempDir())
	out, errOut, code := cli(t, nil, "--socket", sock, "run", "-k", "--ttl", "2h", "--no-network", "-F=false", "-p", "restrictive", "--", "true")
	if code != 0 {
		t.Fatalf("run: %d %q %q", code, out, errOut)
	}
	req := svc.createdReqs()[0]
	if req.Ephemeral || req.TTL != "2h" || req.Network == nil || req.Network.Profile != "none" || !req.NoPool || req.Profile != "restrictive" {
		t.Fatalf("request %+v", req)
	}
	for _, args := range [][]string{
		{"run", "--ttl", "1h", "--", "true"},
		{"run", "--no-network", "--allow", "example.com", "--", "true"},
	} {
		if _, errOut, code := cli(t, nil, append([]string{"--socket", sock}, args...)...); code != 125 || errOut == "" {
			t.Errorf("%v: %d %q", args, code, errOut)
		}
	}
}

func TestRunTemplate(t *testing.T) {
	t.Setenv("AGENTKERNEL_HOME", t.TempDir())
	svc, sock := startDaemon(t)
	dir := writeProject(t, "[sandbox]\nbase_image = \"python:3.13\"\n[resources]\nmemory_mb = 2048\n", nil)
	if _, errOut, code := cli(t, nil, "template", "save", "bigpy", filepath.Join(dir, config.FileName)); code != 0 {
		t.Fatalf("save: %q", errOut)
	}
	t.Chdir(t.TempDir())
	if _, errOut, code := cli(t, nil, "--socket", sock, "run", "--template", "bigpy", "--", "true"); code != 0 {
		t.Fatalf("run --template: %d %q", code, errOut)
	}
	if req := svc.createdReqs()[0]; req.Image != "python:3.13" || req.MemoryMB != 2048 {
		t.Fatalf("request %+v", req)
	}
}

func TestExportImportConfig(t *testing.T) {
	svc, sock := startDaemon(t)
	if _, errOut, code := cli(t, nil, "--socket", sock, "create", "dev", "--image", "python:3.12", "--no-start"); code != 0 {
		t.Fatalf("create: %q", errOut)
	}
	out, errOut, code := cli(t, nil, "--socket", sock, "sandbox", "export-config", "dev")
	if code != 0 || !strings.Contains(out, `name = "dev"`) || !strings.Contains(out, `base_image = "python:3.12"`) {
		t.Fatalf("export-config: %d %q %q", code, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "dev.toml")
	writeFile(t, file, out)
	if _, errOut, code := cli(t, nil, "--socket", sock, "sandbox", "import-config", file, "--as", "copy", "-B", "podman"); code != 0 {
		t.Fatalf("import-config: %d %q", code, errOut)
	}
	if req := svc.createdReqs()[1]; req.Name != "copy" || req.Image != "python:3.12" || req.Backend != "podman" {
		t.Fatalf("request %+v", req)
	}
}
