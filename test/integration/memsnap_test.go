package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// TestGVisorMemorySnapshot: a process counting in a loop in a gvisor
// sandbox is snapshotted with its memory and restored as a new sandbox,
// where the same process (same PID) goes on counting from about the
// snapshot's value, not from 0; a file written before the snapshot is
// there, one written after is not; the secret bound to the sandbox is in
// no checkpoint file; the sandbox forks into 5 children that each go on
// counting on their own; a corrupt checkpoint, another backend and the
// container backend are refused, and the refused restore creates nothing.
func TestGVisorMemorySnapshot(t *testing.T) {
	requireRunsc(t)
	e := newEnv(t)
	busyboxBaseIn(t, e, "it-mem-base")
	const secretValue = "it-memsnap-secret-4b1d9e"
	if r := e.akIn(t, strings.NewReader(secretValue+"\n"), "secret", "set", "MEMSNAP_KEY"); r.code != 0 {
		t.Fatal(r)
	}
	e.create(t, "it-mem", "--image", "it-mem-base", "-B", "gvisor", "--secret", "MEMSNAP_KEY:api.example.com")
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", "it-mem") })
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := e.client(t)
	bg, err := c.ExecDetached(ctx, "it-mem", api.ExecRequest{Command: []string{"/bin/sh", "-c",
		"i=0; while :; do i=$((i+1)); echo $i > /root/count; /bin/busybox sleep 0.1; done"}})
	if err != nil {
		t.Fatal(err)
	}
	count := func(name string) int {
		t.Helper()
		for range 20 {
			b, err := c.ReadFile(ctx, name, "/root/count")
			if n, cerr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && cerr == nil {
				return n
			}
			time.Sleep(50 * time.Millisecond) // caught between truncate and write
		}
		t.Fatalf("%s: cannot read the counter", name)
		return 0
	}
	if !waitFor(30*time.Second, func() bool { _, err := c.ReadFile(ctx, "it-mem", "/root/count"); return err == nil }) {
		t.Fatal("the counter never started")
	}
	time.Sleep(2 * time.Second)
	e.ok(t, "exec", "it-mem", "--", "/bin/sh", "-c", "echo before > /root/before")

	// Refusals that create nothing.
	if r := e.ak(t, "snapshot", "take", "it-mem", "--memory", "-n", "bad/name"); r.code == 0 || !strings.Contains(r.stderr, "invalid sandbox name") {
		t.Errorf("bad snapshot name: %v", r)
	}

	atSnap := count("it-mem")
	t0 := time.Now()
	r := e.ok(t, "snapshot", "take", "it-mem", "--memory", "-n", "it-mem-1")
	t.Logf("memory snapshot took %v (counter at %d before)", time.Since(t0), atSnap)
	t.Cleanup(func() { e.ak(t, "snapshot", "delete", "it-mem-1") })
	if strings.TrimSpace(r.stdout) != "it-mem-1" {
		t.Fatalf("take: %v", r)
	}
	afterSnap := count("it-mem")
	e.ok(t, "exec", "it-mem", "--", "/bin/sh", "-c", "echo after > /root/after")
	if sb := e.info(t, "it-mem"); sb.Status != "running" {
		t.Errorf("the snapshotted sandbox is %s, not running", sb.Status)
	}
	if n := count("it-mem"); n <= afterSnap {
		time.Sleep(time.Second)
		if n2 := count("it-mem"); n2 <= n {
			t.Errorf("the snapshotted sandbox's counter stopped at %d", n2)
		}
	}
	var info api.SnapshotInfo
	if err := json.Unmarshal([]byte(e.ok(t, "snapshot", "inspect", "it-mem-1").stdout), &info); err != nil ||
		info.Kind != "memory" || !strings.HasPrefix(info.Memory, "sha256:") || info.SourceBackend != "gvisor" {
		t.Fatalf("inspect: %v %+v", err, info)
	}
	memDir := filepath.Join(e.h.Dir, "snapshots", "memory", strings.TrimPrefix(info.Memory, "sha256:"))
	ents, err := os.ReadDir(memDir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("checkpoint directory %s: %v %v", memDir, ents, err)
	}
	for _, en := range ents {
		b, err := os.ReadFile(filepath.Join(memDir, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secretValue)) {
			t.Errorf("checkpoint file %s holds the secret value", en.Name())
		}
	}

	// Restore as a new sandbox: the same process goes on counting.
	t0 = time.Now()
	e.ok(t, "snapshot", "restore", "it-mem-1", "--as", "it-mem-r", "--ttl", "1h")
	t.Logf("restore took %v", time.Since(t0))
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", "it-mem-r") })
	restored := e.info(t, "it-mem-r")
	if restored.Backend != "gvisor" || restored.Status != "running" || restored.ExpiresAt == nil || time.Until(*restored.ExpiresAt) < 50*time.Minute {
		t.Fatalf("restored: %+v", restored)
	}
	first := count("it-mem-r")
	if first < atSnap || first > afterSnap+100 {
		t.Errorf("restored counter at %d; the snapshot was taken between %d and %d", first, atSnap, afterSnap)
	}
	time.Sleep(time.Second)
	if n := count("it-mem-r"); n <= first {
		t.Errorf("the restored counter does not go on: %d then %d", first, n)
	}
	dets, err := c.ListDetached(ctx, "it-mem-r")
	if err != nil || len(dets) != 1 || dets[0].ID != bg.ID || dets[0].PID != bg.PID || dets[0].Status != "running" {
		t.Errorf("restored background commands: %v %+v, want %s pid %d running", err, dets, bg.ID, bg.PID)
	}
	r = e.ak(t, "exec", "it-mem-r", "--", "/bin/sh", "-c", "cat /root/before; ls /root/after 2>/dev/null || echo noafter; /bin/busybox hostname")
	if r.code != 0 || r.stdout != "before\nnoafter\nit-mem-r\n" {
		t.Errorf("restored files and host name: %v", r)
	}
	// Its own network identity: its own gateway answers its DNS.
	r = e.ak(t, "exec", "it-mem-r", "--", "/bin/busybox", "nslookup", "example.com")
	if !strings.Contains(r.stdout+r.stderr, "NXDOMAIN") && !strings.Contains(r.stdout+r.stderr, "Address") {
		t.Errorf("restored sandbox's DNS: %v", r)
	}

	// Fork into 5 children that each go on counting.
	t0 = time.Now()
	r = e.ok(t, "--json", "sandbox", "fork", "it-mem", "--count", "5")
	t.Logf("fork of 5 took %v", time.Since(t0))
	var fork api.ForkSandboxResponse
	if err := json.Unmarshal([]byte(r.stdout), &fork); err != nil || len(fork.Sandboxes) != 5 || fork.Snapshot.Kind != "memory" ||
		!strings.Contains(fork.Note, "memory fork") {
		t.Fatalf("fork: %v %+v\n%v", err, fork, r)
	}
	t.Cleanup(func() { e.ak(t, "snapshot", "delete", fork.Snapshot.Name) })
	forkAt := map[string]int{}
	for i := 1; i <= 5; i++ {
		n := "it-mem-fork-" + strconv.Itoa(i)
		t.Cleanup(func() { e.ak(t, "sandbox", "remove", n) })
		forkAt[n] = count(n)
		if forkAt[n] < afterSnap {
			t.Errorf("fork %s counter at %d: it did not start from the parent's (past %d)", n, forkAt[n], afterSnap)
		}
	}
	e.ok(t, "exec", "it-mem-fork-1", "--", "/bin/sh", "-c", "echo mine > /root/mine")
	time.Sleep(time.Second)
	for n, at := range forkAt {
		if got := count(n); got <= at {
			t.Errorf("fork %s does not go on counting: %d then %d", n, at, got)
		}
		want := "noneofmine\n"
		if n == "it-mem-fork-1" {
			want = "mine\n"
		}
		if r := e.ak(t, "exec", n, "--", "/bin/sh", "-c", "cat /root/mine 2>/dev/null || echo noneofmine"); r.stdout != want {
			t.Errorf("fork %s: /root/mine %q, want %q", n, r.stdout, want)
		}
	}

	// A memory snapshot restores on its own backend only.
	if r := e.ak(t, "snapshot", "restore", "it-mem-1", "--as", "it-mem-x", "-B", "container"); r.code == 0 || !strings.Contains(r.stderr, "restores on gvisor only") {
		t.Errorf("restore on another backend: %v", r)
	}
	// A corrupt checkpoint is refused and creates nothing.
	pages := filepath.Join(memDir, "pages.img")
	b, err := os.ReadFile(pages)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(pages, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.ak(t, "snapshot", "restore", "it-mem-1", "--as", "it-mem-x"); r.code == 0 || !strings.Contains(r.stderr, "is corrupt") || !strings.Contains(r.stderr, "nothing was created") {
		t.Errorf("restore of a corrupt snapshot: %v", r)
	}
	if r := e.ak(t, "sandbox", "info", "it-mem-x"); r.code == 0 {
		t.Errorf("a refused restore made a sandbox: %v", r)
	}

	// The container backend refuses, saying why.
	e.create(t, "it-mem-ctr", "--image", "it-mem-base", "-B", "container")
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", "it-mem-ctr") })
	if r := e.ak(t, "snapshot", "take", "it-mem-ctr", "--memory"); r.code == 0 || !strings.Contains(r.stderr, "memory snapshots are not supported by backend container") ||
		!strings.Contains(r.stderr, "CRIU") {
		t.Errorf("--memory on container: %v", r)
	}
}
