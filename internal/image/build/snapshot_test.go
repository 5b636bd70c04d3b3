package build

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TestSnapshotRefusals: a memory snapshot is refused naming the backend,
// a snapshot whose image is gone or whose format is unknown restores
// nothing, and bad names are refused.
func TestSnapshotRefusals(t *testing.T) {
	b, store, fake := newFakeBuilder(t)
	ctx := context.Background()
	if _, err := fake.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "src", Image: "base:1"}); err != nil {
		t.Fatal(err)
	}
	fake.sbx["src"].info.Backend = "container"
	_, err := b.TakeSnapshot(ctx, api.TakeSnapshotRequest{Sandbox: "src", Memory: true})
	if !errors.Is(err, errdefs.ErrNotImplemented) || !strings.Contains(err.Error(), "memory snapshots are not supported by backend container") {
		t.Errorf("memory snapshot: %v", err)
	}
	if _, err := b.TakeSnapshot(ctx, api.TakeSnapshotRequest{Sandbox: "src", Name: "bad/name"}); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("bad name: %v", err)
	}
	if _, err := b.RestoreSnapshot(ctx, "gone", api.RestoreSnapshotRequest{}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("missing snapshot: %v", err)
	}
	base, err := store.Get("base:1")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &image.Config{Labels: map[string]string{labelSnapshot: "future", labelSnapshotFormat: "99", labelSnapshotBknd: "container"}}
	if _, err := store.Compose(snapshotImage("future"), base, nil, cfg, "test", false); err != nil {
		t.Fatal(err)
	}
	before := len(fake.sbx)
	_, err = b.RestoreSnapshot(ctx, "future", api.RestoreSnapshotRequest{As: "restored"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "format 99") {
		t.Errorf("unknown format: %v", err)
	}
	if len(fake.sbx) != before {
		t.Errorf("a refused restore created a sandbox")
	}
	list, err := b.ListSnapshots(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "future" || list[0].Format != 99 {
		t.Errorf("list: %v %+v", err, list)
	}
}
