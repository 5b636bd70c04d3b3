package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// RunPooled runs the suite on a sandbox claimed from a warm pool: it sets
// a pool of one for opts.Backend and opts.Image (PUT /pools), waits for it
// to be ready, runs Run, checks that Run's sandbox was claimed from it,
// and drains the pool.
func RunPooled(t *testing.T, c *client.Client, opts Options) {
	ctx := context.Background()
	key := api.PoolKey{Backend: opts.Backend, Image: opts.Image}
	set, err := c.SetPool(ctx, api.SetPoolRequest{PoolKey: key, Size: 1})
	if err != nil {
		t.Fatalf("setting a pool: %v", err)
	}
	t.Cleanup(func() { c.SetPool(context.Background(), api.SetPoolRequest{PoolKey: set.PoolKey}) })
	ready := WaitPool(t, c, set.PoolKey, 1, 2*time.Minute)
	Run(t, c, opts)
	if now := FindPool(t, c, set.PoolKey); now.Claimed <= ready.Claimed {
		t.Errorf("the suite's sandbox was not claimed from pool %s: %+v", set.PoolKey, now)
	}
}

// FindPool returns the pool of key (resolved), or a zero PoolInfo.
func FindPool(t testing.TB, c *client.Client, key api.PoolKey) api.PoolInfo {
	t.Helper()
	pools, err := c.ListPools(context.Background())
	if err != nil {
		t.Fatalf("listing pools: %v", err)
	}
	for _, p := range pools {
		if p.PoolKey == key {
			return p
		}
	}
	return api.PoolInfo{}
}

// WaitPool waits until the pool of key (resolved) holds at least ready
// sandboxes and is making none, and returns it.
func WaitPool(t testing.TB, c *client.Client, key api.PoolKey, ready int, within time.Duration) api.PoolInfo {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p := FindPool(t, c, key)
		if p.Ready >= ready && p.Starting == 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool %s did not reach %d ready within %v: %s", key, ready, within, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
