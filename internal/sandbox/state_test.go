package sandbox

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

var statuses = []string{api.StatusCreated, api.StatusStarting, api.StatusRunning, api.StatusStopping, api.StatusStopped, api.StatusFailed, api.StatusPaused}

// TestTransitions checks every pair of statuses against the lifecycle as
// written down here, independently of the table in state.go.
func TestTransitions(t *testing.T) {
	want := map[[2]string]bool{
		{"created", "starting"}: true,
		{"starting", "running"}: true, {"starting", "failed"}: true, {"starting", "stopped"}: true,
		{"running", "stopping"}: true, {"running", "failed"}: true, {"running", "stopped"}: true,
		{"stopping", "stopped"}: true, {"stopping", "failed"}: true, {"stopping", "running"}: true,
		{"running", "paused"}: true,
		{"paused", "running"}: true, {"paused", "stopping"}: true, {"paused", "failed"}: true, {"paused", "stopped"}: true,
		{"stopping", "paused"}:  true,
		{"stopped", "starting"}: true,
		{"failed", "starting"}:  true,
	}
	for _, from := range statuses {
		for _, to := range statuses {
			if got := allowed(from, to); got != want[[2]string{from, to}] {
				t.Errorf("%s -> %s: allowed %v, want %v", from, to, got, !got)
			}
		}
	}
	if allowed("bogus", api.StatusRunning) || allowed(api.StatusRunning, "bogus") {
		t.Error("an unknown status is part of the lifecycle")
	}
}

// TestSetStatus: a refused move is a TransitionError of class failed
// precondition and leaves the stored status; an allowed one is stored.
func TestSetStatus(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := NewManager(Config{Store: st})
	defer m.Close()
	if _, err := st.CreateSandbox(ctx, store.Sandbox{UUID: "u1", Name: "s", Status: api.StatusCreated}); err != nil {
		t.Fatal(err)
	}
	err = m.setStatus(ctx, "u1", "s", api.StatusRunning, "")
	var te *TransitionError
	if !errors.As(err, &te) || te.From != api.StatusCreated || te.To != api.StatusRunning || !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("created -> running: %v", err)
	}
	for _, to := range []string{api.StatusStarting, api.StatusRunning, api.StatusStopping, api.StatusStopped} {
		if err := m.setStatus(ctx, "u1", "s", to, ""); err != nil {
			t.Fatalf("-> %s: %v", to, err)
		}
	}
	if err := m.setStatus(ctx, "u1", "s", api.StatusFailed, "boom"); err == nil {
		t.Fatal("stopped -> failed was allowed")
	}
	rec, err := st.GetSandboxByUUID(ctx, "u1")
	if err != nil || rec.Status != api.StatusStopped {
		t.Fatalf("stored: %+v %v", rec, err)
	}
	if err := m.setStatus(ctx, "nope", "x", api.StatusStarting, ""); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing sandbox: %v", err)
	}
}
