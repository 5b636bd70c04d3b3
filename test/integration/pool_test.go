package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/test/conformance"
)

// startServe starts `serve ARGS` for e's home in its own session (the CLI
// then finds it rather than starting one), with --no-tcp unless ARGS give
// a --port; the home's teardown stops it.
func startServe(t *testing.T, e *env, args ...string) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(e.home, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	if !slices.Contains(args, "--port") {
		args = append([]string{"--no-tcp"}, args...)
	}
	cmd := exec.Command(akBin, append([]string{"serve"}, args...)...)
	cmd.Env = e.environ()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	// Health answered over the socket: every listener is up by then (the
	// socket itself accepts connections a moment earlier).
	c, err := e.h.Client()
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Health(ctx) == nil
	}) {
		cmd.Process.Kill()
		t.Fatal("serve did not come up")
	}
}

// pools returns `pool list --json`.
func (e *env) pools(t testing.TB) []api.PoolInfo {
	t.Helper()
	var out []api.PoolInfo
	if err := json.Unmarshal([]byte(e.ok(t, "pool", "list", "--json").stdout), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// pool returns the pool of the given image and memory (0: the default).
func (e *env) pool(t testing.TB, memoryMB int) api.PoolInfo {
	t.Helper()
	for _, p := range e.pools(t) {
		if p.Image == "host" && p.Backend == "container" && (memoryMB == 0 && p.MemoryMB == 512 || p.MemoryMB == memoryMB) {
			return p
		}
	}
	return api.PoolInfo{}
}

func (e *env) waitPoolReady(t *testing.T, memoryMB, ready int) api.PoolInfo {
	t.Helper()
	var p api.PoolInfo
	if !waitFor(60*time.Second, func() bool { p = e.pool(t, memoryMB); return p.Ready == ready && p.Starting == 0 }) {
		t.Fatalf("pool did not reach %d ready: %+v", ready, p)
	}
	return p
}

// TestPools drives warm pools through the real CLI and daemon: claims get
// exactly their caller's settings and nothing of anyone else's, pools
// refill and stop at their memory budget, --no-pool and a spec no pool
// matches are created cold, and a daemon killed mid-refill hands out no
// half-made sandbox afterwards.
func TestPools(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	// Room for three sandboxes of 512 MiB.
	os.WriteFile(filepath.Join(e.home, "daemon.toml"), []byte("[pools]\nmemory_budget_mb = 1536\n"), 0o600)
	startServe(t, e, "--pool", "backend=container,image=host=2")
	p := e.waitPoolReady(t, 0, 2)
	if len(e.list(t)) != 0 {
		t.Fatalf("pooled sandboxes are listed: %+v", e.list(t))
	}

	// A first caller uses a pooled sandbox and leaves traces in it.
	a := e.create(t, "pool-a", "--label", "team=a", "--ttl", "1h")
	if a.Labels["team"] != "a" || a.ExpiresAt == nil || a.Status != api.StatusRunning {
		t.Fatalf("claimed sandbox: %+v", a)
	}
	if got := e.pool(t, 0); got.Claimed != p.Claimed+1 {
		t.Fatalf("create did not claim from the pool: %+v", got)
	}
	if out := e.ok(t, "exec", "pool-a", "--", "hostname").stdout; strings.TrimSpace(out) != "pool-a" {
		t.Errorf("claimed sandbox's hostname %q, want pool-a", out)
	}
	e.ok(t, "exec", "pool-a", "--", "sh", "-c", "echo secret-of-a > /tmp/a-was-here; echo x > /root/a-file")
	e.ok(t, "exec", "--detach", "pool-a", "--", "sleep", "1000")
	e.ok(t, "sandbox", "remove", "pool-a")
	e.waitPoolReady(t, 0, 2)

	// Every later claim is fresh: take all the pool holds.
	for _, name := range []string{"pool-b", "pool-c"} {
		b := e.create(t, name)
		if b.UUID == a.UUID {
			t.Fatalf("%s got the first caller's sandbox back", name)
		}
		out := e.ok(t, "exec", name, "--", "sh", "-c", "ls /tmp /root; ps -eo args; hostname").stdout
		if strings.Contains(out, "a-was-here") || strings.Contains(out, "a-file") || strings.Contains(out, "sleep 1000") {
			t.Errorf("%s sees the first caller's files or processes:\n%s", name, out)
		}
		if !strings.Contains(out, name) {
			t.Errorf("%s's hostname is not its name:\n%s", name, out)
		}
	}
	// A claimed sandbox restarts with its caller's settings (they are in
	// its spec, not only in the running supervisor).
	e.ok(t, "sandbox", "stop", "pool-b")
	e.ok(t, "sandbox", "start", "pool-b")
	if out := e.ok(t, "exec", "pool-b", "--", "hostname").stdout; strings.TrimSpace(out) != "pool-b" {
		t.Errorf("restarted claimed sandbox's hostname %q", out)
	}

	t.Run("SecretsAndPolicy", func(t *testing.T) {
		e.waitPoolReady(t, 0, 2)
		if r := e.akIn(t, strings.NewReader("pool-secret-value-123\n"), "secret", "set", "POOL_KEY"); r.code != 0 {
			t.Fatal(r)
		}
		before := e.pool(t, 0).Claimed
		e.create(t, "pool-s", "--secret", "POOL_KEY:api.example.com", "--allow", "other.example.org")
		if e.pool(t, 0).Claimed != before+1 {
			t.Fatal("a create with secrets and a policy did not claim from the pool")
		}
		out := e.ok(t, "exec", "pool-s", "--", "sh", "-c", "env; cat /.agentkernel/net/ca-bundle.pem >/dev/null && echo ca-ok").stdout
		if !strings.Contains(out, "POOL_KEY=agentkernel-placeholder-POOL_KEY") || !strings.Contains(out, "SSL_CERT_FILE=") || !strings.Contains(out, "ca-ok") {
			t.Errorf("claimed sandbox lacks its secret's placeholder or the CA:\n%s", out)
		}
		if strings.Contains(out, "pool-secret-value-123") {
			t.Error("the secret's value is inside the sandbox")
		}
		if grep := e.ak(t, "exec", "pool-s", "--", "grep", "-rs", "pool-secret-value-123", "/etc", "/root", "/tmp", "/.agentkernel"); grep.code == 0 {
			t.Errorf("the secret's value is in the sandbox's files: %s", grep.stdout)
		}
		var st api.NetworkInfo
		if err := json.Unmarshal([]byte(e.ok(t, "sandbox", "network", "pool-s", "--json").stdout), &st); err != nil {
			t.Fatal(err)
		}
		if st.Policy == nil || !st.Running {
			t.Fatalf("claimed sandbox's network: %+v", st)
		}
		pol := strings.Join(st.Policy.Allow, ",")
		if !strings.Contains(pol, "other.example.org") || !strings.Contains(pol, "api.example.com") {
			t.Errorf("claimed sandbox's policy allows %v, want other.example.org and the secret's host", st.Policy.Allow)
		}
	})

	t.Run("Cold", func(t *testing.T) {
		e.waitPoolReady(t, 0, 2)
		before := e.pool(t, 0)
		e.create(t, "pool-np", "--no-pool")
		e.create(t, "pool-perm", "--profile", "permissive") // no pool of that profile
		e.ok(t, "run", "--no-pool", "--", "true")
		after := e.pool(t, 0)
		if after.Claimed != before.Claimed || after.Missed != before.Missed {
			t.Errorf("--no-pool or a non-matching spec touched the pool: %+v then %+v", before, after)
		}
		// run takes from the pool by default.
		e.ok(t, "run", "--", "true")
		if got := e.pool(t, 0).Claimed; got != before.Claimed+1 {
			t.Errorf("run did not claim from the pool (claimed %d, was %d)", got, before.Claimed)
		}
	})

	t.Run("ResizedClaim", func(t *testing.T) {
		// Other limits claim from the default pool too: the container's
		// cgroup is changed in place.
		e.waitPoolReady(t, 0, 2)
		before := e.pool(t, 0).Claimed
		info := e.create(t, "pool-big", "--memory-mb", "768", "--vcpus", "2")
		if e.pool(t, 0).Claimed != before+1 || info.MemoryMB != 768 || info.VCPUs != 2 {
			t.Fatalf("resized claim: %+v (pool claimed %d, was %d)", info, e.pool(t, 0).Claimed, before)
		}
		out := e.ok(t, "exec", "pool-big", "--", "sh", "-c",
			"cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null; true").stdout
		if !strings.Contains(out, fmt.Sprint(768<<20)) || !strings.Contains(out, "200000") {
			t.Errorf("resized claim's cgroup limits:\n%s", out)
		}
	})

	t.Run("MemoryBudget", func(t *testing.T) {
		e.waitPoolReady(t, 0, 2)
		// 2 x 512 MiB are pooled; 512 MiB of the budget are left: two of 256.
		e.ok(t, "pool", "set", "--memory-mb", "256", "5")
		var small api.PoolInfo
		if !waitFor(60*time.Second, func() bool {
			small = e.pool(t, 256)
			return small.Ready == 2 && small.Starting == 0 && small.Held == "memory budget"
		}) {
			t.Fatalf("pool beyond the budget: %+v", small)
		}
		e.ok(t, "pool", "drain", "--memory-mb", "256")
		if got := e.pool(t, 256); got.Size != 0 {
			t.Errorf("drained pool still listed: %+v", got)
		}
	})

	t.Run("Conformance", func(t *testing.T) {
		// The suite sets the default pool to 1 and drains it after.
		conformance.RunPooled(t, e.client(t), conformance.Options{Backend: "container", Prefix: "pooled-"})
	})

	t.Run("Kill9DuringRefill", func(t *testing.T) {
		e.ok(t, "pool", "set", "3")
		pid, err := e.daemonPID()
		if err != nil {
			t.Fatal(err)
		}
		// Claim one and kill the daemon while the pool refills.
		e.ok(t, "run", "--", "true")
		syscall.Kill(pid, syscall.SIGKILL)
		waitFor(10*time.Second, func() bool { return syscall.Kill(pid, 0) != nil })
		startServe(t, e, "--pool", "backend=container,image=host=3")
		p := e.waitPoolReady(t, 0, 3)
		// Every pooled row is a running sandbox; each one handed out works.
		st, err := store.Open(e.h.Layout().Database())
		if err != nil {
			t.Fatal(err)
		}
		rows, err := st.ListSandboxes(context.Background())
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		pooled := 0
		for _, r := range rows {
			if r.Pool != "" {
				pooled++
				if r.Status != api.StatusRunning {
					t.Errorf("pooled sandbox %s is %s after the restart", r.Name, r.Status)
				}
			}
		}
		if pooled != p.Ready {
			t.Errorf("%d pooled rows, %d ready", pooled, p.Ready)
		}
		for i := range 3 {
			name := fmt.Sprintf("after-kill-%d", i)
			e.create(t, name)
			if out := e.ok(t, "exec", name, "--", "hostname").stdout; strings.TrimSpace(out) != name {
				t.Errorf("sandbox handed out after the restart answers hostname %q", out)
			}
		}
	})
}
