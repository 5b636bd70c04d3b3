package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// fakeMem adds memory snapshots to fakeSandboxes: a checkpoint is a file
// naming the sandbox, and a restore records the directory it was given.
type fakeMem struct {
	*fakeSandboxes
	paused      map[string]bool
	restoredDir string
	failRestore bool
}

func (f *fakeMem) SupportsMemorySnapshots(b string) error {
	if b != "gvisor" {
		return errors.New("memory snapshots are not supported by backend " + b)
	}
	return nil
}

func (f *fakeMem) CheckpointSandbox(_ context.Context, name, dir string) (api.SandboxInfo, error) {
	f.paused[name] = true
	return api.SandboxInfo{Name: name}, os.WriteFile(filepath.Join(dir, "checkpoint.img"), []byte("memory of "+name), 0o600)
}

func (f *fakeMem) ResumeSandbox(_ context.Context, name string) (api.SandboxInfo, error) {
	f.paused[name] = false
	return api.SandboxInfo{Name: name}, nil
}

func (f *fakeMem) RestoreSandbox(ctx context.Context, req api.CreateSandboxRequest, dir string) (api.SandboxInfo, error) {
	f.restoredDir = dir
	sb, err := f.CreateSandbox(ctx, req)
	if f.failRestore {
		return api.SandboxInfo{}, errors.New("runsc restore failed")
	}
	return sb, err
}

// TestMemorySnapshot: a memory snapshot pauses and resumes its sandbox,
// stores the checkpoint by digest with the sandbox's resources and vault
// bindings, restores on its own backend only, refuses a corrupt
// checkpoint and removes the sandbox of a restore that failed; delete
// removes the checkpoint.
func TestMemorySnapshot(t *testing.T) {
	b, _, fake := newFakeBuilder(t)
	mem := &fakeMem{fakeSandboxes: fake, paused: map[string]bool{}}
	b.sbx = mem
	ctx := context.Background()
	if _, err := fake.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "src", Image: "base:1"}); err != nil {
		t.Fatal(err)
	}
	fake.sbx["src"].info.Backend = "gvisor"
	fake.sbx["src"].spec = &backend.Spec{Name: "src", Resources: backend.Resources{MemoryMB: 768, VCPUs: 2, DiskMB: 2048},
		Security: backend.Security{Profile: "moderate"},
		Gateway:  &backend.GatewaySpec{Secrets: []backend.SecretRef{{Name: "K", VaultName: "K", Host: "api.example.com", Header: "Authorization"}}}}

	snap, err := b.TakeSnapshot(ctx, api.TakeSnapshotRequest{Sandbox: "src", Name: "m1", Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Kind != "memory" || !strings.HasPrefix(snap.Memory, "sha256:") || mem.paused["src"] {
		t.Errorf("snapshot %+v; still paused: %v", snap, mem.paused["src"])
	}
	dir, err := b.memoryDir(snap.Memory)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := checkpointDigest(dir); err != nil || got != snap.Memory {
		t.Errorf("stored checkpoint %s: digest %s %v", dir, got, err)
	}

	if _, err := b.RestoreSnapshot(ctx, "m1", api.RestoreSnapshotRequest{As: "x", Backend: "container"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("restore on another backend: %v", err)
	}
	sb, err := b.RestoreSnapshot(ctx, "m1", api.RestoreSnapshotRequest{As: "r1", TTL: "1h"})
	if err != nil || sb.Name != "r1" || mem.restoredDir != dir {
		t.Fatalf("restore: %v %+v from %s", err, sb, mem.restoredDir)
	}

	// A failed restore leaves no sandbox.
	mem.failRestore = true
	if _, err := b.RestoreSnapshot(ctx, "m1", api.RestoreSnapshotRequest{As: "r2"}); err == nil {
		t.Error("a failing restore succeeded")
	}
	if _, ok := fake.sbx["r2"]; ok {
		t.Error("a failed restore left its sandbox")
	}
	mem.failRestore = false
	// A name in use is refused and not removed.
	if _, err := b.RestoreSnapshot(ctx, "m1", api.RestoreSnapshotRequest{As: "r1"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("restore over an existing sandbox: %v", err)
	}
	if _, ok := fake.sbx["r1"]; !ok {
		t.Error("a refused restore removed the sandbox of that name")
	}

	// Corrupt: refused before anything is created.
	if err := os.WriteFile(filepath.Join(dir, "checkpoint.img"), []byte("changed"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := len(fake.sbx)
	if _, err := b.RestoreSnapshot(ctx, "m1", api.RestoreSnapshotRequest{As: "r3"}); !errors.Is(err, errdefs.ErrFailedPrecondition) ||
		!strings.Contains(err.Error(), "is corrupt") {
		t.Errorf("corrupt checkpoint: %v", err)
	}
	if len(fake.sbx) != before {
		t.Error("a corrupt restore created a sandbox")
	}

	// An inline secret cannot be bound again: refused.
	fake.sbx["src"].spec.Gateway.Secrets[0].VaultName = "scoped-K"
	if _, err := b.TakeSnapshot(ctx, api.TakeSnapshotRequest{Sandbox: "src", Name: "m2", Memory: true}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("inline secret: %v", err)
	}
	if mem.paused["src"] {
		t.Error("a refused snapshot left the sandbox paused")
	}

	if err := b.DeleteSnapshot(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("delete kept the checkpoint: %v", err)
	}
}

// TestMemoryLabels: the labels carry what a restore needs.
func TestMemoryLabels(t *testing.T) {
	labels := map[string]string{}
	memoryLabels(labels, "sha256:ab", &backend.Spec{Resources: backend.Resources{MemoryMB: 768, VCPUs: 2, DiskMB: 2048},
		Security: backend.Security{Profile: "moderate"},
		Gateway:  &backend.GatewaySpec{Secrets: []backend.SecretRef{{Name: "K", VaultName: "K", Host: "h", Header: "X"}}}})
	want := map[string]string{labelSnapshotMemory: "sha256:ab", labelSnapshotMemMB: "768", labelSnapshotVCPUs: "2",
		labelSnapshotDiskMB: "2048", labelSnapshotProfile: "moderate", labelSnapshotSecrets: "K:h:X"}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("%s = %q, want %q", k, labels[k], v)
		}
	}
}
