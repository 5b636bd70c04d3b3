package store

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestSandboxRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	created := time.Date(2026, 3, 4, 5, 6, 7, 123456789, zone)
	expires := created.Add(time.Hour)
	in := Sandbox{
		UUID: "11111111-2222", Name: "dev", Status: "created", Backend: "container", Image: "base",
		Profile: "restrictive", Spec: json.RawMessage(`{"id":"11111111-2222","mounts":[{"path":"/w"}]}`),
		VCPUs: 2, MemoryMB: 1024, Labels: map[string]string{"team": "a", "x": "y=z"}, Ephemeral: true,
		CreatedAt: created, ExpiresAt: &expires,
	}
	out, err := s.CreateSandbox(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSandbox(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, out) {
		t.Fatalf("read back\n%+v\nreturned\n%+v", got, out)
	}
	if got.CreatedAt.Location() != time.UTC || got.ExpiresAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
		t.Fatal("times are not in UTC")
	}
	if !got.CreatedAt.Equal(created) || !got.ExpiresAt.Equal(expires) || got.CreatedAt.Nanosecond() != 123456789 {
		t.Fatalf("times changed: %v %v", got.CreatedAt, got.ExpiresAt)
	}
	if got.StartedAt != nil {
		t.Fatalf("never started, StartedAt %v", got.StartedAt)
	}
	byUUID, err := s.GetSandboxByUUID(ctx, "11111111-2222")
	if err != nil || !reflect.DeepEqual(byUUID, got) {
		t.Fatalf("by uuid: %+v, %v", byUUID, err)
	}
	// Defaults.
	min, err := s.CreateSandbox(ctx, Sandbox{UUID: "u2", Name: "min", Status: "created"})
	if err != nil {
		t.Fatal(err)
	}
	got, err = s.GetSandbox(ctx, "min")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Spec) != "{}" || got.Labels != nil || got.CreatedAt.IsZero() || !reflect.DeepEqual(got, min) {
		t.Fatalf("defaults: %+v vs %+v", got, min)
	}
}

func TestSandboxErrors(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	if _, err := s.CreateSandbox(ctx, Sandbox{UUID: "u1", Name: "a", Status: "created"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sb   Sandbox
		want error
	}{
		{"duplicate name", Sandbox{UUID: "u2", Name: "a", Status: "created"}, errdefs.ErrAlreadyExists},
		{"duplicate uuid", Sandbox{UUID: "u1", Name: "b", Status: "created"}, errdefs.ErrAlreadyExists},
		{"no uuid", Sandbox{Name: "c", Status: "created"}, errdefs.ErrInvalidArgument},
		{"no name", Sandbox{UUID: "u3", Status: "created"}, errdefs.ErrInvalidArgument},
		{"bad spec", Sandbox{UUID: "u3", Name: "c", Status: "created", Spec: json.RawMessage(`{"a":`)}, errdefs.ErrInvalidArgument},
		{"long name", Sandbox{UUID: "u3", Name: strings.Repeat("n", maxName+1), Status: "created"}, errdefs.ErrInvalidArgument},
		{"huge spec", Sandbox{UUID: "u3", Name: "c", Status: "created", Spec: json.RawMessage(`"` + strings.Repeat("x", maxSpec) + `"`)}, errdefs.ErrInvalidArgument},
	} {
		if _, err := s.CreateSandbox(ctx, tc.sb); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := s.GetSandbox(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("get missing: %v", err)
	}
	if _, err := s.GetSandboxByUUID(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("get missing uuid: %v", err)
	}
	if err := s.UpdateSandboxStatus(ctx, "nope", "running", ""); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("update missing: %v", err)
	}
	if err := s.UpdateSandboxStatus(ctx, "u1", "", ""); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("empty status: %v", err)
	}
	if err := s.SetSandboxExpiry(ctx, "nope", nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("expiry missing: %v", err)
	}
	if err := s.DeleteSandbox(ctx, "nope"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("delete missing: %v", err)
	}
	// A failed insert left nothing behind.
	list, err := s.ListSandboxes(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list after failures: %v, %v", list, err)
	}
}

func TestSandboxStatusAndExpiry(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	if _, err := s.CreateSandbox(ctx, Sandbox{UUID: "u1", Name: "a", Status: "created"}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(time.Minute)
	if err := s.UpdateSandboxStatus(ctx, "u1", "running", ""); err != nil {
		t.Fatal(err)
	}
	sb, _ := s.GetSandbox(ctx, "a")
	if sb.Status != "running" || sb.StartedAt == nil || !sb.StartedAt.Equal(clock) || !sb.UpdatedAt.Equal(clock) {
		t.Fatalf("after start: %+v", sb)
	}
	started := *sb.StartedAt
	// Running again (an adoption) keeps the first start time.
	clock = clock.Add(time.Minute)
	if err := s.UpdateSandboxStatus(ctx, "u1", "running", ""); err != nil {
		t.Fatal(err)
	}
	sb, _ = s.GetSandbox(ctx, "a")
	if !sb.StartedAt.Equal(started) {
		t.Fatalf("StartedAt moved to %v", sb.StartedAt)
	}
	clock = clock.Add(time.Minute)
	if err := s.UpdateSandboxStatus(ctx, "u1", "failed", "runc exited 1"); err != nil {
		t.Fatal(err)
	}
	sb, _ = s.GetSandbox(ctx, "a")
	if sb.Status != "failed" || sb.Error != "runc exited 1" || !sb.StartedAt.Equal(started) || !sb.UpdatedAt.Equal(clock) {
		t.Fatalf("after failure: %+v", sb)
	}
	clock = clock.Add(time.Minute)
	if err := s.UpdateSandboxStatus(ctx, "u1", "running", ""); err != nil {
		t.Fatal(err)
	}
	sb, _ = s.GetSandbox(ctx, "a")
	if !sb.StartedAt.Equal(clock) || sb.Error != "" {
		t.Fatalf("restart: %+v", sb)
	}

	// Expiry.
	base := clock
	for i, name := range []string{"b", "c", "d"} {
		if _, err := s.CreateSandbox(ctx, Sandbox{UUID: "u-" + name, Name: name, Status: "running"}); err != nil {
			t.Fatal(err)
		}
		exp := base.Add(time.Duration(i+1) * time.Hour)
		if err := s.SetSandboxExpiry(ctx, "u-"+name, &exp); err != nil {
			t.Fatal(err)
		}
	}
	exp, _ := s.ListExpired(ctx, base.Add(2*time.Hour))
	if len(exp) != 2 || exp[0].Name != "b" || exp[1].Name != "c" {
		t.Fatalf("expired at +2h: %+v", exp)
	}
	if err := s.SetSandboxExpiry(ctx, "u-b", nil); err != nil {
		t.Fatal(err)
	}
	exp, _ = s.ListExpired(ctx, base.Add(10*time.Hour))
	if len(exp) != 2 || exp[0].Name != "c" || exp[1].Name != "d" {
		t.Fatalf("expired at +10h after clearing b: %+v", exp)
	}
	if exp, _ := s.ListExpired(ctx, base); len(exp) != 0 {
		t.Fatalf("expired at base: %+v", exp)
	}
	// Listing is oldest first.
	clock = base.Add(-time.Hour)
	if _, err := s.CreateSandbox(ctx, Sandbox{UUID: "u-old", Name: "old", Status: "running", CreatedAt: clock.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	list, _ := s.ListSandboxes(ctx)
	if len(list) != 5 || list[0].Name != "old" || list[1].Name != "a" {
		t.Fatalf("list order: %v", names(list))
	}
}

func names(l []Sandbox) []string {
	var out []string
	for _, sb := range l {
		out = append(out, sb.Name)
	}
	return out
}

func TestDeleteSandboxCascades(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	if _, err := s.CreateSandbox(ctx, Sandbox{UUID: "u1", Name: "a", Status: "running"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendEvent(ctx, Event{SandboxUUID: "u1", SandboxName: "a", Event: "sandbox_created"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSandbox(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.ListEvents(ctx, "u1", 0); err != nil || len(evs) != 1 {
		t.Fatalf("events after delete: %v, %v", evs, err)
	}
	// The name is free again.
	if _, err := s.CreateSandbox(ctx, Sandbox{UUID: "u2", Name: "a", Status: "running"}); err != nil {
		t.Fatal(err)
	}
}

func TestClaimSandbox(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	if _, err := s.CreateSandbox(ctx, Sandbox{UUID: "p1", Name: ".pool-p1", Status: "running", Pool: "container/host"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSandbox(ctx, Sandbox{UUID: "u1", Name: "taken", Status: "running"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSandboxByUUID(ctx, "p1")
	if err != nil || got.Pool != "container/host" {
		t.Fatalf("pooled row: %+v, %v", got, err)
	}
	if err := s.ClaimSandbox(ctx, "p1", Claim{Name: "taken", Spec: json.RawMessage(`{}`)}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("claim under a taken name: %v", err)
	}
	exp := time.Now().Add(time.Hour)
	c := Claim{Name: "mine", Labels: map[string]string{"a": "b"}, Ephemeral: true, ExpiresAt: &exp, Spec: json.RawMessage(`{"name":"mine"}`), VCPUs: 2, MemoryMB: 1024}
	if err := s.ClaimSandbox(ctx, "p1", c); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetSandbox(ctx, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if got.Pool != "" || got.UUID != "p1" || !got.Ephemeral || got.Labels["a"] != "b" || got.ExpiresAt == nil || string(got.Spec) != `{"name":"mine"}` ||
		got.VCPUs != 2 || got.MemoryMB != 1024 {
		t.Fatalf("claimed row: %+v", got)
	}
	// A claimed sandbox cannot be claimed again, nor can one that was never pooled.
	for _, id := range []string{"p1", "u1", "nosuch"} {
		if err := s.ClaimSandbox(ctx, id, Claim{Name: "again", Spec: json.RawMessage(`{}`)}); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("second claim of %s: %v", id, err)
		}
	}
}
