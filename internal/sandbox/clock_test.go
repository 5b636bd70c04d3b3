package sandbox

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/store"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// TestJumpOf: only a wall clock that moved beyond the time that passed by
// the threshold counts as a jump, forward or back.
func TestJumpOf(t *testing.T) {
	for _, c := range []struct {
		wall, mono, want time.Duration
	}{
		{time.Second, time.Second, 0},
		{time.Second + 20*time.Millisecond, time.Second, 0}, // slewing, scheduling
		{time.Hour + time.Second, time.Second, time.Hour},   // stepped forward an hour
		{-2*time.Hour + time.Second, time.Second, -2 * time.Hour},
		{29 * time.Second, 0, 0},
		{31 * time.Second, 0, 31 * time.Second},
	} {
		if got := jumpOf(c.wall, c.mono); got != c.want {
			t.Errorf("jumpOf(wall %v, mono %v) = %v, want %v", c.wall, c.mono, got, c.want)
		}
	}
	now := time.Now()
	if j := clockJump(now, now.Add(time.Second)); j != 0 {
		t.Errorf("clockJump of readings a second apart: %v", j)
	}
}

// TestClockJumpKeepsTTL: the clock (injected: the reaper's "now" and the
// jump it detected) steps forward by two hours. Without moving the expiries,
// a sandbox with an hour left would be expired at once; with them moved,
// it is not, and it expires when its hour has really passed. A step back
// likewise does not keep it longer.
func TestClockJumpKeepsTTL(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := NewManager(Config{Store: st})
	defer m.Close()
	start := time.Now().UTC()
	exp := start.Add(time.Hour)
	if _, err := st.CreateSandbox(ctx, store.Sandbox{UUID: "u1", Name: "ttl", Status: api.StatusRunning, ExpiresAt: &exp}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateSandbox(ctx, store.Sandbox{UUID: "u2", Name: "forever", Status: api.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	expired := func(now time.Time) bool {
		recs, err := st.ListExpired(ctx, now)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs) > 0
	}

	jumped := start.Add(2 * time.Hour) // the wall clock, a moment later
	if !expired(jumped) {
		t.Fatal("the premise: a 2h forward jump expires a sandbox with 1h left")
	}
	m.clockJumped(ctx, 2*time.Hour)
	if expired(jumped) {
		t.Error("after a 2h forward clock jump, the sandbox with an hour left is expired at once")
	}
	if expired(jumped.Add(59 * time.Minute)) {
		t.Error("expired before its hour had passed")
	}
	if !expired(jumped.Add(61 * time.Minute)) {
		t.Error("not expired once its hour had passed")
	}
	rec, _ := st.GetSandbox(ctx, "forever")
	if rec.ExpiresAt != nil {
		t.Errorf("a sandbox without a TTL got one: %v", rec.ExpiresAt)
	}

	// Back by three hours: an hour left still means an hour.
	m.clockJumped(ctx, -3*time.Hour)
	back := jumped.Add(-3 * time.Hour)
	if expired(back.Add(59*time.Minute)) || !expired(back.Add(61*time.Minute)) {
		t.Error("after a clock jump back, the sandbox does not expire an hour on")
	}
}
