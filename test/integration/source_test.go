package integration

import (
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSourceClone: `sandbox create --source URL [--git-ref REF]` (upstream's
// source_url/source_ref) clones a repository into /workspace from inside
// the sandbox, through its gateway and under its network policy. The
// repository is served by git's own smart HTTP server (git http-backend)
// in the test's network world at http://allowed.test/git/repo.git.
func TestSourceClone(t *testing.T) {
	requireEnv(t)
	backendPath := "/usr/lib/git-core/git-http-backend"
	if out, err := exec.Command("git", "--exec-path").Output(); err == nil {
		backendPath = filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	}
	if _, err := os.Stat(backendPath); err != nil {
		t.Skipf("git http-backend not found (%v); scripts/setup.sh installs git", err)
	}
	w := newNetWorld(t)
	e := w.e

	// A repository: v1 (tagged), then v2 on main, and a branch feature.
	root := t.TempDir()
	work := filepath.Join(t.TempDir(), "work")
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.MkdirAll(work, 0o755)
	git(work, "init", "-q")
	os.WriteFile(filepath.Join(work, "hello"), []byte("v1\n"), 0o644)
	git(work, "add", "hello")
	git(work, "commit", "-qm", "v1")
	git(work, "tag", "v1")
	first := git(work, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(work, "hello"), []byte("v2\n"), 0o644)
	git(work, "commit", "-qam", "v2")
	git(work, "checkout", "-qb", "feature")
	os.WriteFile(filepath.Join(work, "feat"), []byte("feature\n"), 0o644)
	git(work, "add", "feat")
	git(work, "commit", "-qm", "feature")
	git(work, "checkout", "-q", "main")
	bare := filepath.Join(root, "repo.git")
	git(root, "clone", "-q", "--bare", work, bare)
	git(bare, "config", "uploadpack.allowAnySHA1InWant", "true")
	var h http.Handler = &cgi.Handler{Path: backendPath, Root: "/git",
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	w.git.Store(&h)
	const url = "http://allowed.test/git/repo.git"

	cat := func(name, file string) string {
		t.Helper()
		return e.ak(t, "exec", name, "--", "cat", "/workspace/"+file).stdout
	}
	for _, c := range []struct {
		name, ref, file, want string
	}{
		{"src-default", "", "hello", "v2\n"},
		{"src-tag", "v1", "hello", "v1\n"},
		{"src-branch", "feature", "feat", "feature\n"},
		{"src-commit", first, "hello", "v1\n"},
	} {
		args := []string{"sandbox", "create", c.name, "--allow", "allowed.test", "--source", url}
		if c.ref != "" {
			args = append(args, "--git-ref", c.ref)
		}
		if r := e.ak(t, args...); r.code != 0 {
			t.Fatalf("%s: %v", c.name, r)
		}
		t.Cleanup(func() { e.ak(t, "sandbox", "remove", c.name) })
		if got := cat(c.name, c.file); got != c.want {
			t.Errorf("%s (ref %q): /workspace/%s = %q, want %q", c.name, c.ref, c.file, got, c.want)
		}
	}

	// The clone is the sandbox's own traffic: without allowed.test in its
	// policy it fails, and nothing is left.
	r := e.ak(t, "sandbox", "create", "src-denied", "--source", url)
	if r.code == 0 || !strings.Contains(r.stderr, "cloning "+url) || !strings.Contains(r.stderr, "network policy") {
		t.Errorf("a source the policy does not allow: want a failure naming the clone and the policy, got %v", r)
	}
	if strings.Contains(e.ak(t, "sandbox", "list").stdout, "src-denied") {
		t.Error("the sandbox whose clone failed is still listed")
	}

	// Refused before anything is created.
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--source", "file:///etc"}, "only https:// and http://"},
		{[]string{"--source", "https://user:pw@allowed.test/x.git"}, "credentials in the URL"},
		{[]string{"--source", url, "--git-ref", "--upload-pack=touch /tmp/pwned"}, "not a branch, tag or commit"},
		{[]string{"--source", url, "--git-ref", "main..v1"}, "not a branch, tag or commit"},
		{[]string{"--git-ref", "main"}, "source_ref without source_url"},
		{[]string{"--source", url, "--no-start"}, "start=false"},
	} {
		r := e.ak(t, append([]string{"sandbox", "create", "src-bad", "--allow", "allowed.test"}, bad.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("create %v: want a refusal saying %q, got %v", bad.args, bad.want, r)
			e.ak(t, "sandbox", "remove", "src-bad")
		}
	}
	if _, err := os.Stat("/tmp/pwned"); err == nil {
		t.Error("a ref reached git as an option")
	}
}
