package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// TestSnapshotRestoreFork takes a filesystem snapshot of a container
// sandbox, restores it on gVisor, forks it, and checks the refusals.
func TestSnapshotRestoreFork(t *testing.T) {
	requireRunsc(t)
	busyboxBase(t, "it-snap-base")
	shared.create(t, "it-snap", "--image", "it-snap-base", "-B", "container")
	t.Cleanup(func() { shared.ak(t, "sandbox", "remove", "it-snap") })
	shared.ok(t, "exec", "it-snap", "--", "/bin/sh", "-c", "echo a > /root/A")

	// Refusals first: bad names, memory snapshots.
	if r := shared.ak(t, "snapshot", "take", "it-snap", "-n", "bad/name"); r.code == 0 || !strings.Contains(r.stderr, "invalid sandbox name") {
		t.Errorf("bad snapshot name: %v", r)
	}
	if r := shared.ak(t, "snapshot", "take", "it-snap", "--memory"); r.code == 0 || !strings.Contains(r.stderr, "memory snapshots are not supported by backend container: it would need CRIU") {
		t.Errorf("--memory: %v", r)
	}

	r := shared.ok(t, "snapshot", "take", "it-snap", "-n", "it-snap-1")
	if strings.TrimSpace(r.stdout) != "it-snap-1" {
		t.Fatalf("take: %v", r)
	}
	t.Cleanup(func() { shared.ak(t, "snapshot", "delete", "it-snap-1") })
	shared.ok(t, "exec", "it-snap", "--", "/bin/sh", "-c", "echo b > /root/B")

	// List and inspect, CLI and HTTP.
	r = shared.ok(t, "snapshot", "list")
	if !strings.Contains(r.stdout, "it-snap-1") {
		t.Errorf("list: %v", r)
	}
	r = shared.ok(t, "snapshot", "inspect", "it-snap-1")
	var info api.SnapshotInfo
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info.SourceSandbox != "it-snap" || info.SourceBackend != "container" || info.Format != api.SnapshotFormat {
		t.Errorf("inspect: %v %+v", err, info)
	}
	c := shared.client(t)
	ctx := context.Background()
	if got, err := c.GetSnapshot(ctx, "it-snap-1"); err != nil || got.ImageID != info.ImageID {
		t.Errorf("GET /snapshots/it-snap-1: %v %+v", err, got)
	}
	if list, err := c.ListSnapshots(ctx); err != nil || len(list) == 0 {
		t.Errorf("GET /snapshots: %v %+v", err, list)
	}

	// Restore on another backend.
	r = shared.ok(t, "snapshot", "restore", "it-snap-1", "--as", "it-snap-gv", "-B", "gvisor")
	t.Cleanup(func() { shared.ak(t, "sandbox", "remove", "it-snap-gv") })
	if sb := shared.info(t, "it-snap-gv"); sb.Backend != "gvisor" {
		t.Errorf("restored backend: %+v", sb)
	}
	r = shared.ak(t, "exec", "it-snap-gv", "--", "/bin/sh", "-c", "cat /root/A; ls /root/B 2>/dev/null || echo noB")
	if r.code != 0 || r.stdout != "a\nnoB\n" {
		t.Errorf("restored files: %v", r)
	}

	// A snapshot a running sandbox uses is not deleted.
	if r := shared.ak(t, "snapshot", "delete", "it-snap-1"); r.code == 0 || !strings.Contains(r.stderr, "in use") {
		t.Errorf("delete of a used snapshot: %v", r)
	}

	// Fork.
	r = shared.ok(t, "--json", "sandbox", "fork", "it-snap", "--count", "3")
	var fork api.ForkSandboxResponse
	if err := json.Unmarshal([]byte(r.stdout), &fork); err != nil || len(fork.Sandboxes) != 3 || !strings.Contains(fork.Note, "processes restart") {
		t.Fatalf("fork: %v %+v\n%v", err, fork, r)
	}
	t.Cleanup(func() { shared.ak(t, "snapshot", "delete", fork.Snapshot.Name) })
	for i := 1; i <= 3; i++ {
		n := "it-snap-fork-" + string(rune('0'+i))
		t.Cleanup(func() { shared.ak(t, "sandbox", "remove", n) })
		if sb := shared.info(t, n); sb.Status != "running" {
			t.Errorf("fork %s: %+v", n, sb)
		}
		shared.ok(t, "exec", n, "--", "/bin/sh", "-c", "echo "+n+" > /root/mine")
	}
	for i := 1; i <= 3; i++ {
		n := "it-snap-fork-" + string(rune('0'+i))
		r := shared.ak(t, "exec", n, "--", "/bin/sh", "-c", "cat /root/A /root/B /root/mine")
		if want := "a\nb\n" + n + "\n"; r.code != 0 || r.stdout != want {
			t.Errorf("fork %s files: want %q\n%v", n, want, r)
		}
	}

	// Restoring a snapshot that is gone creates nothing.
	if r := shared.ak(t, "snapshot", "restore", "it-snap-none", "--as", "it-snap-x"); r.code == 0 || !strings.Contains(r.stderr, "no snapshot") {
		t.Errorf("restore of a missing snapshot: %v", r)
	}
	if r := shared.ak(t, "sandbox", "info", "it-snap-x"); r.code == 0 {
		t.Errorf("a failed restore made a sandbox: %v", r)
	}
}
