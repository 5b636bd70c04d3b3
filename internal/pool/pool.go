// Package pool keeps warm pools of fresh sandboxes: for each configured key
// (backend, image, profile, resources) it keeps a number of sandboxes
// started and never used, hands each out once (Take) and makes new ones in
// the background, a few at a time, within a memory budget and not while
// the host is short of memory. A sandbox is never returned to a pool after
// use; the only way back is Return, for a claim that failed before it
// bound anything of its caller's.
//
// The sandboxes themselves are made, claimed and removed by
// internal/sandbox (see Sandboxes); this package only counts and decides.
package pool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Sandboxes makes and removes pooled sandboxes; internal/sandbox's Manager
// implements it.
type Sandboxes interface {
	// ResolvePoolKey fills in a key's defaults and checks it.
	ResolvePoolKey(ctx context.Context, k api.PoolKey) (api.PoolKey, error)
	// CreatePooled starts one sandbox for the pool of a resolved key.
	CreatePooled(ctx context.Context, k api.PoolKey) (string, error)
	// RemovePooled removes a pooled sandbox never claimed.
	RemovePooled(ctx context.Context, uuid string) error
	// PooledSandboxes lists the running pooled sandboxes by key.
	PooledSandboxes(ctx context.Context) (map[api.PoolKey][]string, error)
}

// Defaults.
const (
	// pressureFraction: refilling waits while less than this part of the
	// host's memory is available.
	pressureFraction = 0.10
	// budgetFraction of the host's memory is the default budget.
	budgetFraction = 0.25
	// tick is how often the pools are looked at without a kick (to retry
	// after a failure or once memory is free again).
	tick = time.Second
	// maxBackoff bounds the wait after failed creates.
	maxBackoff = time.Minute
	// removeTimeout bounds the removal of one surplus sandbox.
	removeTimeout = time.Minute
)

// Config configures Pools.
type Config struct {
	Sandboxes Sandboxes
	// Sizes are the pools to keep, by key (resolved by Start).
	Sizes map[api.PoolKey]int
	// Concurrency is how many sandboxes are made at once, over all pools;
	// 0 means the CPU count, at most 4.
	Concurrency int
	// MemoryBudgetMB bounds the sum of the memory limits of all pooled
	// sandboxes, ready or starting; 0 means a quarter of the host's
	// memory.
	MemoryBudgetMB int
	// MemInfo reads the host's total and available memory in bytes; nil
	// reads /proc/meminfo. Tests replace it.
	MemInfo func() (total, available uint64, err error)
	Logger  *slog.Logger
}

// Pools is the set of warm pools. Its methods are safe for concurrent use.
type Pools struct {
	cfg  Config
	log  *slog.Logger
	sem  chan struct{} // one token per create in flight
	kick chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards pools, budgetMB and the pools' fields.
	mu       sync.Mutex
	pools    map[api.PoolKey]*pool
	budgetMB int
}

type pool struct {
	key      api.PoolKey
	size     int
	ready    []string // oldest first
	starting int
	claimed  uint64
	missed   uint64
	held     string
	lastErr  string
	failures int
	retryAt  time.Time
}

// New returns Pools; nothing is made until Start.
func New(cfg Config) *Pools {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = min(runtime.NumCPU(), 4)
	}
	if cfg.MemInfo == nil {
		cfg.MemInfo = readMemInfo
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pools{cfg: cfg, log: log, sem: make(chan struct{}, cfg.Concurrency), kick: make(chan struct{}, 1),
		ctx: ctx, cancel: cancel, pools: map[api.PoolKey]*pool{}}
}

// Start resolves the configured pools, takes over the pooled sandboxes a
// previous daemon left running (surplus ones and those of pools no longer
// configured are removed) and starts refilling. A key that does not
// resolve (an image not pulled, say) is an error: the daemon refuses a
// configuration it cannot honour.
func (p *Pools) Start(ctx context.Context) error {
	budget := p.cfg.MemoryBudgetMB
	if budget <= 0 {
		total, _, err := p.cfg.MemInfo()
		if err != nil {
			return fmt.Errorf("warm pools: reading the host's memory for the default budget: %w", err)
		}
		budget = int(float64(total) * budgetFraction / (1 << 20))
	}
	pools := map[api.PoolKey]*pool{}
	for k, n := range p.cfg.Sizes {
		if n < 0 || n > api.MaxPoolSize {
			return fmt.Errorf("%w: pool %s: size %d (0 to %d)", errdefs.ErrInvalidArgument, k, n, api.MaxPoolSize)
		}
		rk, err := p.cfg.Sandboxes.ResolvePoolKey(ctx, k)
		if err != nil {
			return fmt.Errorf("warm pool %s: %w", k, err)
		}
		if n > 0 {
			pools[rk] = &pool{key: rk, size: n}
		}
	}
	left, err := p.cfg.Sandboxes.PooledSandboxes(ctx)
	if err != nil {
		return err
	}
	var surplus []string
	for k, ids := range left {
		pl := pools[k]
		for _, id := range ids {
			if pl != nil && len(pl.ready) < pl.size {
				pl.ready = append(pl.ready, id)
			} else {
				surplus = append(surplus, id)
			}
		}
	}
	p.mu.Lock()
	p.pools, p.budgetMB = pools, budget
	p.mu.Unlock()
	p.remove(surplus)
	p.wg.Add(1)
	go p.loop()
	p.poke()
	return nil
}

// Close stops refilling and waits for creates and removals in flight.
// Pooled sandboxes stay: the next daemon takes them over.
func (p *Pools) Close() {
	p.cancel()
	p.wg.Wait()
}

// Take hands out the oldest ready sandbox of key's pool.
func (p *Pools) Take(key api.PoolKey) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl := p.pools[key]
	if pl == nil {
		return "", false
	}
	if len(pl.ready) == 0 {
		pl.missed++
		return "", false
	}
	id := pl.ready[0]
	pl.ready = pl.ready[1:]
	pl.claimed++
	p.poke()
	return id, true
}

// Return puts back a sandbox Take handed out, untouched.
func (p *Pools) Return(key api.PoolKey, uuid string) {
	p.mu.Lock()
	pl := p.pools[key]
	if pl != nil && len(pl.ready) < pl.size {
		pl.ready = append([]string{uuid}, pl.ready...)
		if pl.claimed > 0 {
			pl.claimed--
		}
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.remove([]string{uuid})
}

// Set makes key's pool keep size sandboxes ready; 0 drains it (its ready
// sandboxes are removed and the pool is forgotten). It returns the pool as
// it is now.
func (p *Pools) Set(ctx context.Context, key api.PoolKey, size int) (api.PoolInfo, error) {
	if size < 0 || size > api.MaxPoolSize {
		return api.PoolInfo{}, fmt.Errorf("%w: pool size %d (0 to %d)", errdefs.ErrInvalidArgument, size, api.MaxPoolSize)
	}
	rk, err := p.cfg.Sandboxes.ResolvePoolKey(ctx, key)
	if err != nil {
		return api.PoolInfo{}, err
	}
	p.mu.Lock()
	pl := p.pools[rk]
	if pl == nil {
		pl = &pool{key: rk}
		if size > 0 {
			p.pools[rk] = pl
		}
	}
	pl.size, pl.failures, pl.retryAt, pl.lastErr = size, 0, time.Time{}, ""
	var surplus []string
	if len(pl.ready) > size {
		surplus = slices.Clone(pl.ready[size:])
		pl.ready = pl.ready[:size]
	}
	if size == 0 && pl.starting == 0 {
		delete(p.pools, rk)
	}
	info := pl.info()
	p.mu.Unlock()
	p.remove(surplus)
	p.poke()
	return info, nil
}

// List reports every pool, ordered by key.
func (p *Pools) List() []api.PoolInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]api.PoolInfo, 0, len(p.pools))
	for _, pl := range p.pools {
		out = append(out, pl.info())
	}
	slices.SortFunc(out, func(a, b api.PoolInfo) int { return cmp.Compare(a.PoolKey.String(), b.PoolKey.String()) })
	return out
}

func (pl *pool) info() api.PoolInfo {
	return api.PoolInfo{PoolKey: pl.key, Size: pl.size, Ready: len(pl.ready), Starting: pl.starting,
		Claimed: pl.claimed, Missed: pl.missed, Held: pl.held, LastError: pl.lastErr}
}

// poke wakes the refill loop.
func (p *Pools) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *Pools) loop() {
	defer p.wg.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		p.refill()
		select {
		case <-p.ctx.Done():
			return
		case <-p.kick:
		case <-t.C:
		}
	}
}

// refill starts what the pools lack, as far as the concurrency, the
// budget and the host's free memory allow.
func (p *Pools) refill() {
	total, avail, memErr := p.cfg.MemInfo()
	pressure := memErr == nil && float64(avail) < float64(total)*pressureFraction
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	used := 0
	for _, pl := range p.pools {
		used += (len(pl.ready) + pl.starting) * pl.key.MemoryMB
	}
	keys := make([]api.PoolKey, 0, len(p.pools))
	for k := range p.pools {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b api.PoolKey) int { return cmp.Compare(a.String(), b.String()) })
	for _, pl := range p.pools {
		pl.held = ""
	}
	for _, k := range keys {
		pl := p.pools[k]
		for len(pl.ready)+pl.starting < pl.size {
			if now.Before(pl.retryAt) {
				break
			}
			if pressure {
				pl.held = "memory pressure"
				break
			}
			if used+k.MemoryMB > p.budgetMB {
				pl.held = "memory budget"
				break
			}
			select {
			case p.sem <- struct{}{}:
			default:
				return // all create slots busy; a finishing one pokes
			}
			pl.starting++
			used += k.MemoryMB
			p.wg.Add(1)
			go p.make(k)
		}
	}
}

// make creates one sandbox for key's pool.
func (p *Pools) make(k api.PoolKey) {
	defer p.wg.Done()
	defer p.poke()
	id, err := p.cfg.Sandboxes.CreatePooled(p.ctx, k)
	<-p.sem
	p.mu.Lock()
	pl := p.pools[k]
	keep := false
	if pl != nil {
		pl.starting--
		switch {
		case err != nil:
			pl.failures++
			pl.lastErr = err.Error()
			pl.retryAt = time.Now().Add(min(time.Duration(1<<min(pl.failures, 6))*time.Second, maxBackoff))
		case len(pl.ready) < pl.size:
			pl.ready = append(pl.ready, id)
			pl.failures, pl.lastErr = 0, ""
			keep = true
		}
		if pl.size == 0 && pl.starting == 0 {
			delete(p.pools, k)
		}
	}
	p.mu.Unlock()
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			p.log.Warn("making a pooled sandbox failed", "pool", k.String(), "err", err)
		}
		return
	}
	if !keep {
		p.remove([]string{id})
	}
}

// remove removes pooled sandboxes in the background.
func (p *Pools) remove(ids []string) {
	for _, id := range ids {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), removeTimeout)
			defer cancel()
			if err := p.cfg.Sandboxes.RemovePooled(ctx, id); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
				p.log.Warn("removing a pooled sandbox", "uuid", id, "err", err)
			}
		}()
	}
}
