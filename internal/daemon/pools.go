package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/agentkernel/agentkernel/internal/daemonconf"
	"github.com/agentkernel/agentkernel/internal/pool"
	"github.com/agentkernel/agentkernel/internal/sandbox"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// startPools starts the warm pools: the default pool (default image and
// profile on the container backend), daemon.toml's [pools] and serve's
// --pool flags, in that order, a later size for the same resolved key
// replacing an earlier one.
func startPools(ctx context.Context, mgr *sandbox.Manager, conf daemonconf.Pools, flags []string, log *slog.Logger) (*pool.Pools, error) {
	defSize, err := conf.DefaultPool()
	if err != nil {
		return nil, err
	}
	sizes := map[api.PoolKey]int{}
	set := func(k api.PoolKey, n int, from string) error {
		rk, err := mgr.ResolvePoolKey(ctx, k)
		if err != nil {
			return fmt.Errorf("warm pool %s (%s): %w", k, from, err)
		}
		sizes[rk] = n
		return nil
	}
	if err := set(api.PoolKey{Backend: "container"}, defSize, "the default pool"); err != nil {
		return nil, err
	}
	for _, list := range []struct {
		from    string
		entries []string
	}{{daemonconf.FileName + " [pools]", conf.Pools}, {"--pool", flags}} {
		for _, e := range list.entries {
			k, n, err := api.ParsePoolSize(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", list.from, err)
			}
			if err := set(k, n, list.from); err != nil {
				return nil, err
			}
		}
	}
	p := pool.New(pool.Config{Sandboxes: mgr, Sizes: sizes, Concurrency: conf.Concurrency,
		MemoryBudgetMB: conf.MemoryBudgetMB, Logger: log})
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// poolService adapts pool.Pools to httpapi.PoolManager.
type poolService struct{ p *pool.Pools }

func (s poolService) ListPools(context.Context) []api.PoolInfo { return s.p.List() }

func (s poolService) SetPool(ctx context.Context, req api.SetPoolRequest) (api.PoolInfo, error) {
	return s.p.Set(ctx, req.PoolKey, req.Size)
}
