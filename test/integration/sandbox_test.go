package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func TestSandboxLifecycle(t *testing.T) {
	requireEnv(t)
	e := shared
	r := e.ok(t, "sandbox", "create", "it-life", "--label", "team=it")
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", "it-life") })
	if r.stdout != "it-life\n" {
		t.Errorf("create printed %q, want the name", r.stdout)
	}
	info := e.info(t, "it-life")
	if info.Name != "it-life" || info.Status != api.StatusRunning || info.UUID == "" ||
		info.Backend != "container" || info.Labels["team"] != "it" {
		t.Errorf("info: %+v", info)
	}
	found := false
	for _, sb := range e.list(t) {
		found = found || (sb.Name == "it-life" && sb.UUID == info.UUID)
	}
	if !found {
		t.Errorf("list --json lacks it-life")
	}

	r = e.ak(t, "exec", "it-life", "--", "sh", "-c", "echo hi; echo e >&2; exit 5")
	if r.code != 5 || r.stdout != "hi\n" || r.stderr != "e\n" {
		t.Errorf("exec: want exit 5 with hi/e, got %v", r)
	}
	e.ok(t, "exec", "it-life", "--", "sh", "-c", "echo kept > /root/keep.txt")

	r = e.ok(t, "sandbox", "stop", "it-life")
	if got := e.info(t, "it-life").Status; got != api.StatusStopped {
		t.Errorf("after stop: status %s", got)
	}
	r = e.ak(t, "exec", "it-life", "--", "true")
	if r.code != 125 || !strings.HasPrefix(r.stderr, "agentkernel: ") ||
		!(strings.Contains(r.stderr, "stopped") || strings.Contains(r.stderr, "not running")) {
		t.Errorf("exec in a stopped sandbox: want exit 125 and a message saying it is not running, got %v", r)
	}

	e.ok(t, "sandbox", "start", "it-life")
	if got := e.info(t, "it-life").Status; got != api.StatusRunning {
		t.Errorf("after start: status %s", got)
	}
	r = e.ak(t, "exec", "it-life", "--", "cat", "/root/keep.txt")
	if r.code != 0 || r.stdout != "kept\n" {
		t.Errorf("file after stop/start: %v", r)
	}

	r = e.ok(t, "sandbox", "remove", "it-life")
	if r.stdout != "it-life\n" {
		t.Errorf("remove printed %q", r.stdout)
	}
	r = e.ak(t, "sandbox", "info", "it-life")
	if r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("info after remove: %v", r)
	}
	if d := e.sandboxDir(info.UUID); waitFor(5*time.Second, func() bool { return !exists(d) }) == false {
		t.Errorf("state directory %s is left after remove", d)
	}
	for _, id := range e.runcContainers() {
		if id == info.UUID {
			t.Errorf("runc container %s is left after remove", id)
		}
	}
}

func TestSandboxNames(t *testing.T) {
	requireEnv(t)
	e := shared
	e.create(t, "it-dup")
	r := e.ak(t, "sandbox", "create", "it-dup")
	if r.code != 1 || !strings.Contains(r.stderr, "it-dup") || !strings.Contains(r.stderr, "exist") {
		t.Errorf("duplicate name: want exit 1 and a message, got %v", r)
	}
	for _, bad := range []string{"bad/name", "../x", "sp ace", strings.Repeat("a", 64), "é"} {
		r := e.ak(t, "sandbox", "create", bad)
		if r.code != 1 || !strings.Contains(r.stderr, "name") {
			t.Errorf("invalid name %q: want exit 1 and a message about the name, got %v", bad, r)
		}
	}
	for _, sb := range e.list(t) {
		if strings.Contains(sb.Name, "bad") || strings.Contains(sb.Name, "..") {
			t.Errorf("an invalid name was created: %+v", sb)
		}
	}
	r = e.ak(t, "exec", "it-no-such-sandbox", "--", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("exec in a missing sandbox: %v", r)
	}
}

func TestDetached(t *testing.T) {
	requireEnv(t)
	e := shared
	e.create(t, "it-det")
	r := e.ok(t, "exec", "-d", "it-det", "--", "sh", "-c", "echo started; echo oops >&2; exec sleep 300")
	id := strings.TrimSpace(r.stdout)
	if id == "" || strings.ContainsAny(id, " \n") {
		t.Fatalf("exec -d printed %q, want one id", r.stdout)
	}
	d, ok := findDetached(t, e, "it-det", id)
	if !ok || d.Status != api.DetachedRunning || d.PID <= 0 || strings.Join(d.Command, " ") != "sh -c echo started; echo oops >&2; exec sleep 300" {
		t.Errorf("detached list: %+v (found %v)", d, ok)
	}
	var logs result
	if !waitFor(15*time.Second, func() bool {
		logs = e.ak(t, "detached", "logs", "it-det", id)
		return logs.stdout == "started\n" && logs.stderr == "oops\n"
	}) {
		t.Errorf("detached logs: %v", logs)
	}
	e.ok(t, "detached", "kill", "it-det", id)
	if !waitFor(15*time.Second, func() bool {
		d, ok = findDetached(t, e, "it-det", id)
		return ok && d.Status != api.DetachedRunning && d.ExitCode != nil
	}) {
		t.Errorf("after kill: %+v", d)
	}

	r = e.ok(t, "exec", "-d", "it-det", "--", "sh", "-c", "exit 3")
	id = strings.TrimSpace(r.stdout)
	if !waitFor(15*time.Second, func() bool {
		d, ok = findDetached(t, e, "it-det", id)
		return ok && d.ExitCode != nil
	}) || *d.ExitCode != 3 || d.Status == api.DetachedRunning {
		t.Errorf("short detached command: %+v", d)
	}
	r = e.ak(t, "detached", "logs", "it-det", "no-such-id")
	if r.code != 1 || !strings.Contains(r.stderr, "not found") {
		t.Errorf("logs of an unknown id: %v", r)
	}
}

// findDetached looks id up in `detached list --json NAME`.
func findDetached(t *testing.T, e *env, name, id string) (api.DetachedCommand, bool) {
	t.Helper()
	r := e.ok(t, "detached", "list", "--json", name)
	var list []api.DetachedCommand
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("detached list --json: %v\n%s", err, r.stdout)
	}
	for _, d := range list {
		if d.ID == id {
			return d, true
		}
	}
	return api.DetachedCommand{}, false
}

// TestUpstreamBackendNames: upstream's backend names map to ours where the
// meaning fits and are refused with the reason where it does not.
func TestUpstreamBackendNames(t *testing.T) {
	requireEnv(t)
	shared.ok(t, "sandbox", "list")
	c := shared.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := false
	info, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "it-docker-name", Backend: "docker", Start: &start})
	if err != nil || info.Backend != "container" {
		t.Errorf("backend docker: %+v %v, want the container backend", info, err)
	}
	shared.ak(t, "sandbox", "remove", "it-docker-name")
	if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "it-apple-name", Backend: "apple", Start: &start}); err == nil || !strings.Contains(err.Error(), "macOS") {
		t.Errorf("backend apple: %v, want a refusal saying why", err)
	}
}
