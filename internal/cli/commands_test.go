package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func TestCreateListInfoRemove(t *testing.T) {
	svc, sock := startDaemon(t)
	wd, _ := os.Getwd()
	out, errOut, code := cli(t, nil, "--socket", sock, "create", "dev", "--image", "python", "--label", "team=a",
		"--label", "x=y=z", "--dir", "data:/data:ro", "--ttl", "2h", "--vcpus", "2", "--no-start")
	if code != 0 || out != "dev\n" {
		t.Fatalf("create: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	req := svc.createdReqs()[0]
	if req.Image != "python" || req.Labels["team"] != "a" || req.Labels["x"] != "y=z" || req.TTL != "2h" || req.VCPUs != 2 ||
		req.Start == nil || *req.Start || len(req.Dirs) != 1 || req.Dirs[0] != filepath.Join(wd, "data")+":/data:ro" {
		t.Fatalf("request %+v", req)
	}
	// The sandbox group has the same commands.
	if _, _, code := cli(t, nil, "--socket", sock, "sandbox", "create", "web"); code != 0 {
		t.Fatal("sandbox create failed")
	}

	out, _, code = cli(t, nil, "--socket", sock, "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "dev ") ||
		!strings.Contains(lines[1], "python") || !strings.Contains(lines[1], "1 hour ago") {
		t.Fatalf("list: code %d\n%s", code, out)
	}
	out, _, code = cli(t, nil, "--socket", sock, "sandbox", "ls", "--json")
	var list []api.SandboxInfo
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[1].Name != "web" {
		t.Fatalf("list --json: code %d\n%s", code, out)
	}

	out, _, code = cli(t, nil, "--socket", sock, "sandbox", "info", "dev")
	if code != 0 || !strings.Contains(out, "Name:      dev") || !strings.Contains(out, "Labels:    team=a, x=y=z") {
		t.Fatalf("info: code %d\n%s", code, out)
	}
	out, _, code = cli(t, nil, "--json", "sandbox", "info", "dev", "--socket", sock)
	var info api.SandboxInfo
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info.Name != "dev" {
		t.Fatalf("info --json: code %d\n%s", code, out)
	}

	out, _, code = cli(t, nil, "--socket", sock, "sandbox", "extend", "dev", "--by", "1h")
	if code != 0 || !strings.Contains(out, "2030-01-02") {
		t.Fatalf("extend: code %d, %q", code, out)
	}
	if _, e, code := cli(t, nil, "--socket", sock, "sandbox", "extend", "dev"); code != 1 || !strings.Contains(e, "--by") {
		t.Fatalf("extend without --by: %d %q", code, e)
	}

	out, _, code = cli(t, nil, "--socket", sock, "stop", "dev")
	if code != 0 || out != "dev\n" {
		t.Fatalf("stop: %d %q", code, out)
	}

	// remove goes on after a failure and fails overall.
	out, errOut, code = cli(t, nil, "--socket", sock, "rm", "dev", "ghost", "web")
	if code != 1 || out != "dev\nweb\n" || !strings.Contains(errOut, "ghost") || !strings.Contains(errOut, "1 of 3") {
		t.Fatalf("rm: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, e, code := cli(t, nil, "--socket", sock, "sandbox", "info", "dev"); code != 1 || !strings.Contains(e, "not found") {
		t.Fatalf("info after rm: %d %q", code, e)
	}
	out, _, code = cli(t, nil, "--socket", sock, "list", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty list --json: %d %q", code, out)
	}
}

func TestCreateFlagErrors(t *testing.T) {
	svc, sock := startDaemon(t)
	for _, args := range [][]string{
		{"create", "x", "--label", "novalue"},
		{"create", "x", "--label", "a=1", "--label", "a=2"},
		{"create", "x", "--ttl", "forever"},
		{"create", "x", "--ttl", "0d"},
		{"create", "x", "--dir", "a:relative"},
		{"create", "x", "--dir", "a:/b:rx"},
		{"create", "x", "--memory-mb", "-1"},
		{"create"},
		{"create", "a", "b"},
	} {
		_, errOut, code := cli(t, nil, append([]string{"--socket", sock}, args...)...)
		if code != 1 || !strings.HasPrefix(errOut, "agentkernel: ") {
			t.Errorf("%v: code %d, stderr %q", args, code, errOut)
		}
	}
	if len(svc.createdReqs()) != 0 {
		t.Fatal("a malformed create reached the daemon")
	}
}

func TestDoctor(t *testing.T) {
	svc, sock := startDaemon(t)
	runc := api.DoctorCheck{Name: "runc", OK: true, Detail: "1.1.5"}
	svc.setDoctor(runc)
	out, _, code := cli(t, nil, "--socket", sock, "doctor")
	if code != 0 || out != "✓ runc: 1.1.5\n" {
		t.Fatalf("doctor: %d %q", code, out)
	}
	svc.setDoctor(runc, api.DoctorCheck{Name: "cgroups", Detail: "no memory controller", Fix: "enable it"})
	out, _, code = cli(t, nil, "--socket", sock, "doctor")
	if code != 1 || !strings.Contains(out, "✗ cgroups: no memory controller\n    fix: enable it") {
		t.Fatalf("doctor with a failure: %d %q", code, out)
	}
	out, _, code = cli(t, nil, "--socket", sock, "doctor", "--json")
	var checks []api.DoctorCheck
	if code != 1 || json.Unmarshal([]byte(out), &checks) != nil || len(checks) != 2 {
		t.Fatalf("doctor --json: %d %q", code, out)
	}
	out, _, code = cli(t, nil, "--socket", sock+".missing", "doctor")
	if code != 1 || !strings.HasPrefix(out, "✗ daemon: ") {
		t.Fatalf("doctor without a daemon: %d %q", code, out)
	}
}

func TestVersionAndHelp(t *testing.T) {
	out, _, code := cli(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "agentkernel ") {
		t.Fatalf("version: %d %q", code, out)
	}
	out, _, code = cli(t, nil, "-V")
	if code != 0 || !strings.HasPrefix(out, "agentkernel ") {
		t.Fatalf("-V: %d %q", code, out)
	}
	// Every command has help, and the upstream names exist.
	for _, c := range []string{"run", "exec", "attach", "cp", "create", "start", "stop", "remove", "list",
		"sandbox info", "sandbox logs", "sandbox extend", "detached logs", "image import", "doctor"} {
		out, _, code := cli(t, nil, append(strings.Fields(c), "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%s --help: %d %q", c, code, out)
		}
	}
	_, errOut, code := cli(t, nil, "frobnicate")
	if code != 1 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errOut)
	}
}

func TestLogsImagesDetached(t *testing.T) {
	svc, sock := startDaemon(t)
	svc.add("dev")
	out, _, code := cli(t, nil, "--socket", sock, "sandbox", "logs", "dev")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.Contains(lines[0], `sandbox_created {"image":"base"}`) ||
		strings.ContainsRune(out, 0x1b) {
		t.Fatalf("logs: %d %q", code, out)
	}
	out, _, code = cli(t, nil, "--socket", sock, "image", "ls")
	if code != 0 || !strings.Contains(out, "sha256:0123456789ab ") || !strings.Contains(out, "3.0 MiB") {
		t.Fatalf("image ls: %d %q", code, out)
	}
	wd, _ := os.Getwd()
	out, _, code = cli(t, nil, "--socket", sock, "--json", "image", "import", "py", "rootfs.tar")
	var img api.ImageInfo
	if code != 0 || json.Unmarshal([]byte(out), &img) != nil || img.Source != filepath.Join(wd, "rootfs.tar") {
		t.Fatalf("image import: %d %q", code, out)
	}
	out, _, code = cli(t, nil, "--socket", sock, "detached", "ls", "dev")
	if code != 0 || !strings.Contains(out, "completed (exit 3)") || !strings.Contains(out, "sleep 9") {
		t.Fatalf("detached ls: %d %q", code, out)
	}
	out, errOut, code := cli(t, nil, "--socket", sock, "detached", "logs", "dev", "bg-1")
	if code != 0 || out != "out\n" || errOut != "err\n" {
		t.Fatalf("detached logs: %d %q %q", code, out, errOut)
	}
	out, _, code = cli(t, nil, "--socket", sock, "detached", "logs", "--stream", "stderr", "dev", "bg-1")
	if code != 0 || out != "err\n" {
		t.Fatalf("detached logs --stream stderr: %d %q", code, out)
	}
}
