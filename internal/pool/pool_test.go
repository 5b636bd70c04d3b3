// Unit tests of the warm-pool controller's counting and decisions.
//
// The Sandboxes used here is a fake: these tests check only what Pools
// counts and decides (how many to make, when to hold, what to hand out,
// what to remove), not how sandboxes are made. The real Manager is
// exercised by test/integration/pool_test.go.
package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// waitFor bounds every wait for a background effect.
const waitFor = 5 * time.Second

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitFor, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeSandboxes implements Sandboxes in memory.
type fakeSandboxes struct {
	mu sync.Mutex
	// onCreate, when set, runs (without mu) before CreatePooled succeeds;
	// an error it returns is CreatePooled's.
	onCreate func(ctx context.Context, k api.PoolKey, call int) error
	pooled   map[api.PoolKey][]string

	next        int
	calls       int
	callTimes   []time.Time
	inflight    int
	maxInflight int
	created     []string
	removed     []string
}

func resolve(k api.PoolKey) api.PoolKey {
	if k.Backend == "" {
		k.Backend = "container"
	}
	if k.Image == "" {
		k.Image = "host"
	}
	if k.Profile == "" {
		k.Profile = "moderate"
	}
	if k.MemoryMB == 0 {
		k.MemoryMB = 512
	}
	if k.VCPUs == 0 {
		k.VCPUs = 1
	}
	return k
}

func (f *fakeSandboxes) ResolvePoolKey(_ context.Context, k api.PoolKey) (api.PoolKey, error) {
	if k.Image == "missing" {
		return api.PoolKey{}, fmt.Errorf("%w: image %q", errdefs.ErrNotFound, k.Image)
	}
	return resolve(k), nil
}

func (f *fakeSandboxes) CreatePooled(ctx context.Context, k api.PoolKey) (string, error) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.callTimes = append(f.callTimes, time.Now())
	f.inflight++
	f.maxInflight = max(f.maxInflight, f.inflight)
	hook := f.onCreate
	f.mu.Unlock()
	var err error
	if hook != nil {
		err = hook(ctx, k, call)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight--
	if err != nil {
		return "", err
	}
	f.next++
	id := fmt.Sprintf("sb-%d", f.next)
	f.created = append(f.created, id)
	return id, nil
}

func (f *fakeSandboxes) RemovePooled(_ context.Context, uuid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, uuid)
	return nil
}

func (f *fakeSandboxes) PooledSandboxes(context.Context) (map[api.PoolKey][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[api.PoolKey][]string{}
	for k, ids := range f.pooled {
		out[k] = slices.Clone(ids)
	}
	return out, nil
}

func (f *fakeSandboxes) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeSandboxes) inFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inflight
}

func (f *fakeSandboxes) removedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.removed)
	slices.Sort(out)
	return out
}

// blockAfter returns an onCreate that lets the first n creates through and
// holds the others until ctx is cancelled.
func blockAfter(n int) func(context.Context, api.PoolKey, int) error {
	return func(ctx context.Context, _ api.PoolKey, call int) error {
		if call <= n {
			return nil
		}
		<-ctx.Done()
		return ctx.Err()
	}
}

// memInfo is a MemInfo the test changes.
type memInfo struct {
	mu           sync.Mutex
	total, avail uint64
}

func newMemInfo() *memInfo { return &memInfo{total: 16 << 30, avail: 12 << 30} }

func (m *memInfo) set(total, avail uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.total, m.avail = total, avail
}

func (m *memInfo) read() (uint64, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total, m.avail, nil
}

var hostKey = api.PoolKey{Image: "host"}

// start makes Pools over f with cfg's gaps filled (a large budget, plenty
// of memory), starts it and closes it at the test's end.
func start(t *testing.T, f *fakeSandboxes, cfg Config) *Pools {
	t.Helper()
	cfg.Sandboxes = f
	if cfg.MemoryBudgetMB == 0 {
		cfg.MemoryBudgetMB = 1 << 20
	}
	if cfg.MemInfo == nil {
		cfg.MemInfo = newMemInfo().read
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	p := New(cfg)
	if err := p.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// poolInfo returns key's pool as List reports it.
func poolInfo(p *Pools, key api.PoolKey) (api.PoolInfo, bool) {
	for _, in := range p.List() {
		if in.PoolKey == key {
			return in, true
		}
	}
	return api.PoolInfo{}, false
}

func readyIs(p *Pools, key api.PoolKey, n int) func() bool {
	return func() bool {
		in, ok := poolInfo(p, key)
		return ok && in.Ready == n && in.Starting == 0
	}
}

func TestFillTakeRefill(t *testing.T) {
	f := &fakeSandboxes{}
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 3}})
	k := resolve(hostKey)

	eventually(t, "3 ready", readyIs(p, k, 3))
	in, _ := poolInfo(p, k)
	if in.Size != 3 || in.Held != "" || in.LastError != "" {
		t.Fatalf("pool after filling: %+v", in)
	}
	if n := f.callCount(); n != 3 {
		t.Fatalf("CreatePooled called %d times, want 3", n)
	}

	a, ok1 := p.Take(k)
	b, ok2 := p.Take(k)
	if !ok1 || !ok2 || a == "" || b == "" || a == b {
		t.Fatalf("Take = (%q, %v), (%q, %v); want two distinct ids", a, ok1, b, ok2)
	}
	eventually(t, "refilled to 3", readyIs(p, k, 3))
	in, _ = poolInfo(p, k)
	if in.Claimed != 2 || in.Missed != 0 {
		t.Fatalf("Claimed %d Missed %d, want 2, 0", in.Claimed, in.Missed)
	}
	if n := f.callCount(); n != 5 {
		t.Fatalf("CreatePooled called %d times, want 5", n)
	}
	// Everything still in the pool is different from what was handed out.
	seen := map[string]bool{a: true, b: true}
	for range 3 {
		id, ok := p.Take(k)
		if !ok || seen[id] {
			t.Fatalf("Take = (%q, %v); want a fresh id (seen %v)", id, ok, seen)
		}
		seen[id] = true
	}
}

func TestTakeEmptyAndUnknown(t *testing.T) {
	f := &fakeSandboxes{onCreate: blockAfter(0)} // every create blocks
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 2}})
	k := resolve(hostKey)

	eventually(t, "2 starting", func() bool { return f.inFlight() == 2 })
	if id, ok := p.Take(k); ok || id != "" {
		t.Fatalf("Take on an empty pool = (%q, %v), want (\"\", false)", id, ok)
	}
	if _, ok := p.Take(k); ok {
		t.Fatal("second Take on an empty pool succeeded")
	}
	in, ok := poolInfo(p, k)
	if !ok || in.Missed != 2 || in.Claimed != 0 || in.Ready != 0 || in.Starting != 2 {
		t.Fatalf("pool after two misses: %+v (found %v)", in, ok)
	}

	unknown := resolve(api.PoolKey{Image: "python:3.12"})
	if id, ok := p.Take(unknown); ok || id != "" {
		t.Fatalf("Take on an unknown key = (%q, %v), want (\"\", false)", id, ok)
	}
	// An unresolved key is a different key from the resolved one.
	if _, ok := p.Take(hostKey); ok {
		t.Fatal("Take on the unresolved key succeeded")
	}
	if _, ok := poolInfo(p, unknown); ok {
		t.Fatal("Take on an unknown key made a pool")
	}
}

func TestMemoryBudget(t *testing.T) {
	f := &fakeSandboxes{}
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 5}, MemoryBudgetMB: 1024})
	k := resolve(hostKey)
	if k.MemoryMB != 512 {
		t.Fatalf("resolved MemoryMB %d, want 512", k.MemoryMB)
	}
	eventually(t, "2 ready, held by the budget", func() bool {
		in, ok := poolInfo(p, k)
		return ok && in.Ready == 2 && in.Starting == 0 && in.Held == "memory budget"
	})
	if n := f.callCount(); n != 2 {
		t.Fatalf("CreatePooled called %d times within a 1024 MB budget of 512 MB sandboxes, want 2", n)
	}
	// A claimed sandbox no longer counts against the budget.
	if _, ok := p.Take(k); !ok {
		t.Fatal("Take failed")
	}
	eventually(t, "refilled to 2 after a take", func() bool {
		in, ok := poolInfo(p, k)
		return ok && in.Ready == 2 && in.Starting == 0 && in.Held == "memory budget" && f.callCount() == 3
	})
}

func TestMemoryPressure(t *testing.T) {
	f := &fakeSandboxes{}
	mem := newMemInfo()
	mem.set(16<<30, 1<<30) // 6.25% available
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 3}, MemInfo: mem.read})
	k := resolve(hostKey)

	eventually(t, "held by memory pressure", func() bool {
		in, ok := poolInfo(p, k)
		return ok && in.Held == "memory pressure"
	})
	if n := f.callCount(); n != 0 {
		t.Fatalf("CreatePooled called %d times under memory pressure, want 0", n)
	}
	in, _ := poolInfo(p, k)
	if in.Ready != 0 || in.Starting != 0 {
		t.Fatalf("pool under pressure: %+v", in)
	}

	mem.set(16<<30, 8<<30)
	eventually(t, "filled once memory is free", func() bool {
		in, ok := poolInfo(p, k)
		return ok && in.Ready == 3 && in.Starting == 0 && in.Held == ""
	})
}

func TestConcurrencyBound(t *testing.T) {
	release := make(chan struct{})
	f := &fakeSandboxes{onCreate: func(ctx context.Context, _ api.PoolKey, _ int) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 6}, Concurrency: 2})
	k := resolve(hostKey)

	eventually(t, "2 creates in flight", func() bool { return f.inFlight() == 2 })
	in, _ := poolInfo(p, k)
	if in.Starting != 2 {
		t.Fatalf("Starting %d, want 2", in.Starting)
	}
	// Kicks must not start more while both slots are busy.
	if _, err := p.Set(context.Background(), hostKey, 6); err != nil {
		t.Fatal(err)
	}
	p.poke()
	close(release)
	eventually(t, "6 ready", readyIs(p, k, 6))
	f.mu.Lock()
	maxIn, calls := f.maxInflight, f.calls
	f.mu.Unlock()
	if maxIn != 2 {
		t.Fatalf("max creates in flight %d, want 2", maxIn)
	}
	if calls != 6 {
		t.Fatalf("CreatePooled called %d times, want 6", calls)
	}
}

func TestCreateFailureBackoff(t *testing.T) {
	f := &fakeSandboxes{onCreate: func(_ context.Context, _ api.PoolKey, call int) error {
		if call == 1 {
			return errors.New("boom")
		}
		return nil
	}}
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 1}})
	k := resolve(hostKey)

	eventually(t, "LastError set", func() bool {
		in, ok := poolInfo(p, k)
		return ok && in.LastError == "boom"
	})
	in, _ := poolInfo(p, k)
	if in.Ready != 0 || in.Starting != 0 {
		t.Fatalf("pool after a failure: %+v", in)
	}
	// The retry waits out the backoff (2 s after the first failure), then
	// succeeds and clears LastError.
	eventually(t, "retried and filled", func() bool {
		in, ok := poolInfo(p, k)
		return ok && in.Ready == 1 && in.Starting == 0 && in.LastError == ""
	})
	f.mu.Lock()
	calls, times := f.calls, slices.Clone(f.callTimes)
	f.mu.Unlock()
	if calls != 2 {
		t.Fatalf("CreatePooled called %d times, want 2 (one failure, one retry)", calls)
	}
	if gap := times[1].Sub(times[0]); gap < 2*time.Second {
		t.Fatalf("retried %v after the failed create, want at least the 2 s backoff", gap)
	}
}

func TestCreateFailureBacksOff(t *testing.T) {
	f := &fakeSandboxes{onCreate: func(context.Context, api.PoolKey, int) error { return errors.New("no image") }}
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 3}, Concurrency: 1})
	k := resolve(hostKey)

	eventually(t, "LastError set", func() bool {
		in, ok := poolInfo(p, k)
		return ok && in.LastError == "no image"
	})
	// Kicks during the backoff do not retry.
	for range 10 {
		p.poke()
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.callCount(); n != 1 {
		t.Fatalf("CreatePooled called %d times during the backoff, want 1", n)
	}
	// Set clears the backoff and the error.
	in, err := p.Set(context.Background(), hostKey, 3)
	if err != nil {
		t.Fatal(err)
	}
	if in.LastError != "" {
		t.Fatalf("Set left LastError %q", in.LastError)
	}
	eventually(t, "retried after Set", func() bool { return f.callCount() >= 2 })
}

func TestSet(t *testing.T) {
	f := &fakeSandboxes{}
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 2}})
	k := resolve(hostKey)
	ctx := context.Background()
	eventually(t, "2 ready", readyIs(p, k, 2))

	// Grow.
	in, err := p.Set(ctx, hostKey, 4)
	if err != nil {
		t.Fatal(err)
	}
	if in.PoolKey != k || in.Size != 4 {
		t.Fatalf("Set(4) = %+v", in)
	}
	eventually(t, "grown to 4", readyIs(p, k, 4))
	if len(f.removedIDs()) != 0 {
		t.Fatalf("growing removed %v", f.removedIDs())
	}

	// Shrink: the surplus ready ones are removed, the oldest one stays.
	in, err = p.Set(ctx, k, 1)
	if err != nil {
		t.Fatal(err)
	}
	if in.Size != 1 || in.Ready != 1 {
		t.Fatalf("Set(1) = %+v", in)
	}
	eventually(t, "3 surplus removed", func() bool { return len(f.removedIDs()) == 3 })
	f.mu.Lock()
	created := slices.Clone(f.created)
	f.mu.Unlock()
	id, ok := p.Take(k)
	if !ok {
		t.Fatal("Take after shrinking failed")
	}
	if slices.Contains(f.removedIDs(), id) {
		t.Fatalf("Take handed out %s, which was removed", id)
	}
	want := slices.DeleteFunc(slices.Clone(created), func(s string) bool { return s == id })
	slices.Sort(want)
	if got := f.removedIDs(); !slices.Equal(got, want) {
		t.Fatalf("removed %v, want %v", got, want)
	}
	eventually(t, "refilled to 1", readyIs(p, k, 1))

	// Drain: size 0 removes the ready one and forgets the pool.
	in, err = p.Set(ctx, hostKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	if in.Size != 0 || in.Ready != 0 {
		t.Fatalf("Set(0) = %+v", in)
	}
	eventually(t, "pool gone from List", func() bool { return len(p.List()) == 0 })
	eventually(t, "drained one removed", func() bool { return len(f.removedIDs()) == 4 })
	if _, ok := p.Take(k); ok {
		t.Fatal("Take on a drained pool succeeded")
	}

	// A new key through Set.
	py := api.PoolKey{Image: "python:3.12", MemoryMB: 256}
	in, err = p.Set(ctx, py, 1)
	if err != nil {
		t.Fatal(err)
	}
	if in.PoolKey != resolve(py) || in.Size != 1 {
		t.Fatalf("Set(new key) = %+v", in)
	}
	eventually(t, "new pool filled", readyIs(p, resolve(py), 1))

	// Bad sizes and keys.
	for _, n := range []int{-1, api.MaxPoolSize + 1} {
		if _, err := p.Set(ctx, hostKey, n); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Set(%d) error = %v, want ErrInvalidArgument", n, err)
		}
	}
	if _, err := p.Set(ctx, api.PoolKey{Image: "missing"}, 1); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Set(unresolvable key) error = %v, want ErrNotFound", err)
	}
	if _, err := p.Set(ctx, hostKey, api.MaxPoolSize); err != nil {
		t.Errorf("Set(MaxPoolSize) error = %v", err)
	}
	if _, err := p.Set(ctx, hostKey, 0); err != nil {
		t.Fatal(err)
	}
}

func TestSetZeroWhileStarting(t *testing.T) {
	release := make(chan struct{})
	f := &fakeSandboxes{onCreate: func(ctx context.Context, _ api.PoolKey, call int) error {
		if call <= 1 {
			return nil
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 2}})
	k := resolve(hostKey)
	eventually(t, "1 ready, 1 starting", func() bool {
		in, ok := poolInfo(p, k)
		return ok && in.Ready == 1 && in.Starting == 1
	})
	in, err := p.Set(context.Background(), hostKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	if in.Size != 0 || in.Ready != 0 || in.Starting != 1 {
		t.Fatalf("Set(0) while starting = %+v", in)
	}
	// The pool stays, size 0, while its create is in flight.
	if in, ok := poolInfo(p, k); !ok || in.Size != 0 {
		t.Fatalf("pool while its last create is in flight: %+v (found %v)", in, ok)
	}
	close(release)
	eventually(t, "pool gone", func() bool { return len(p.List()) == 0 })
	eventually(t, "both removed", func() bool { return len(f.removedIDs()) == 2 })
	if n := f.callCount(); n != 2 {
		t.Fatalf("CreatePooled called %d times, want 2", n)
	}
}

func TestStartAdopts(t *testing.T) {
	k := resolve(hostKey)
	gone := resolve(api.PoolKey{Image: "old"})
	f := &fakeSandboxes{
		onCreate: blockAfter(0), // a create would block; none should start until a Take
		pooled: map[api.PoolKey][]string{
			k:    {"a", "b", "c", "d"},
			gone: {"x", "y"},
		},
	}
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 3}})

	in, ok := poolInfo(p, k)
	if !ok || in.Ready != 3 || in.Starting != 0 {
		t.Fatalf("pool after adopting: %+v (found %v)", in, ok)
	}
	if _, ok := poolInfo(p, gone); ok {
		t.Fatal("an unconfigured key's sandboxes made a pool")
	}
	eventually(t, "surplus removed", func() bool { return len(f.removedIDs()) == 3 })
	if got, want := f.removedIDs(), []string{"d", "x", "y"}; !slices.Equal(got, want) {
		t.Fatalf("removed %v, want %v", got, want)
	}
	// Oldest first; the Take kicks a refill, which starts exactly one create
	// (so none was started for the adopted ones).
	if id, ok := p.Take(k); !ok || id != "a" {
		t.Fatalf("Take = (%q, %v), want (a, true)", id, ok)
	}
	eventually(t, "one create for the taken one", func() bool { return f.inFlight() == 1 })
	in, _ = poolInfo(p, k)
	if in.Ready != 2 || in.Starting != 1 {
		t.Fatalf("pool after a take: %+v", in)
	}
	if n := f.callCount(); n != 1 {
		t.Fatalf("CreatePooled called %d times, want 1", n)
	}
}

func TestStartErrors(t *testing.T) {
	for name, sizes := range map[string]map[api.PoolKey]int{
		"negative":   {hostKey: -1},
		"too large":  {hostKey: api.MaxPoolSize + 1},
		"unresolved": {{Image: "missing"}: 1},
	} {
		t.Run(name, func(t *testing.T) {
			p := New(Config{Sandboxes: &fakeSandboxes{}, Sizes: sizes, MemoryBudgetMB: 1024, MemInfo: newMemInfo().read})
			if err := p.Start(context.Background()); err == nil {
				p.Close()
				t.Fatal("Start succeeded")
			}
		})
	}
}

func TestDefaultBudget(t *testing.T) {
	f := &fakeSandboxes{}
	mem := newMemInfo()
	mem.set(8<<30, 8<<30) // a quarter is 2048 MB: four 512 MB sandboxes
	p := New(Config{Sandboxes: f, Sizes: map[api.PoolKey]int{hostKey: 10}, MemInfo: mem.read})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	k := resolve(hostKey)
	eventually(t, "4 ready, held by the budget", func() bool {
		in, ok := poolInfo(p, k)
		return ok && in.Ready == 4 && in.Starting == 0 && in.Held == "memory budget"
	})
}

func TestReturn(t *testing.T) {
	f := &fakeSandboxes{onCreate: blockAfter(3)} // fill, then hold refills
	p := start(t, f, Config{Sizes: map[api.PoolKey]int{hostKey: 3}})
	k := resolve(hostKey)
	eventually(t, "3 ready", readyIs(p, k, 3))

	id, ok := p.Take(k)
	if !ok {
		t.Fatal("Take failed")
	}
	eventually(t, "refill in flight", func() bool { return f.inFlight() == 1 })
	p.Return(k, id)
	in, _ := poolInfo(p, k)
	if in.Ready != 3 || in.Claimed != 0 {
		t.Fatalf("pool after Return: %+v, want Ready 3 Claimed 0", in)
	}
	if got, ok := p.Take(k); !ok || got != id {
		t.Fatalf("Take after Return = (%q, %v), want (%q, true)", got, ok, id)
	}
	p.Return(k, id)

	// The pool is full now (3 ready): a Return removes the id.
	p.Return(k, "extra")
	eventually(t, "extra removed", func() bool { return slices.Contains(f.removedIDs(), "extra") })
	in, _ = poolInfo(p, k)
	if in.Ready != 3 || in.Claimed != 0 {
		t.Fatalf("pool after a Return to a full pool: %+v", in)
	}
	// An unknown pool: removed too.
	p.Return(resolve(api.PoolKey{Image: "other"}), "stray")
	eventually(t, "stray removed", func() bool { return slices.Contains(f.removedIDs(), "stray") })
	if got := f.removedIDs(); !slices.Equal(got, []string{"extra", "stray"}) {
		t.Fatalf("removed %v, want [extra stray]", got)
	}
	if len(p.List()) != 1 {
		t.Fatalf("List = %+v, want only the host pool", p.List())
	}
}

func TestParseMemInfo(t *testing.T) {
	const sample = `MemTotal:       16318412 kB
MemFree:         1234567 kB
MemAvailable:    8159206 kB
Buffers:          234567 kB
Cached:          4567890 kB
SwapTotal:       2097148 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`
	total, avail, err := parseMemInfo([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if total != 16318412<<10 || avail != 8159206<<10 {
		t.Fatalf("parseMemInfo = %d, %d; want %d, %d", total, avail, uint64(16318412)<<10, uint64(8159206)<<10)
	}

	for name, text := range map[string]string{
		"no MemAvailable": "MemTotal:       16318412 kB\nMemFree:         1234567 kB\n",
		"no MemTotal":     "MemFree:         1234567 kB\nMemAvailable:    8159206 kB\n",
		"empty":           "",
		"garbled":         "MemTotal: lots kB\nMemAvailable: some kB\n",
	} {
		if _, _, err := parseMemInfo([]byte(text)); err == nil {
			t.Errorf("%s: parseMemInfo succeeded", name)
		}
	}

	// The real file, where there is one.
	if total, avail, err := readMemInfo(); err == nil && (total == 0 || avail > total) {
		t.Errorf("readMemInfo = %d, %d", total, avail)
	}
}

func TestCloseWaitsForCreates(t *testing.T) {
	cancelled := make(chan struct{}, 2)
	release := make(chan struct{})
	f := &fakeSandboxes{onCreate: func(ctx context.Context, _ api.PoolKey, _ int) error {
		<-ctx.Done()
		cancelled <- struct{}{}
		<-release
		return ctx.Err()
	}}
	p := New(Config{Sandboxes: f, Sizes: map[api.PoolKey]int{hostKey: 5}, Concurrency: 2,
		MemoryBudgetMB: 1 << 20, MemInfo: newMemInfo().read})
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "2 creates in flight", func() bool { return f.inFlight() == 2 })

	done := make(chan struct{})
	go func() {
		p.Close()
		close(done)
	}()
	// Both creates see the cancellation but are held: Close must wait.
	for range 2 {
		select {
		case <-cancelled:
		case <-time.After(waitFor):
			t.Fatal("a create did not see Close's cancellation")
		}
	}
	select {
	case <-done:
		t.Fatal("Close returned with creates in flight")
	default:
	}
	close(release)
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Close did not return after the creates ended")
	}
	if n := f.inFlight(); n != 0 {
		t.Fatalf("%d creates in flight after Close", n)
	}
	if n := f.callCount(); n != 2 {
		t.Fatalf("CreatePooled called %d times, want 2", n)
	}
}
