package netgw

import (
	"net/netip"
	"sync"
	"time"
)

// nameTable remembers which names a sandbox resolved to which addresses,
// until an expiry. It is bounded: when full, expired entries are swept and
// then the entries expiring soonest are dropped. Safe for concurrent use.
type nameTable struct {
	max int

	mu   sync.Mutex // guards the fields below
	byIP map[netip.Addr]map[string]time.Time
	n    int // total (ip, name) entries
}

func newNameTable(max int) *nameTable {
	return &nameTable{max: max, byIP: make(map[netip.Addr]map[string]time.Time)}
}

// add records that name resolved to ips, valid until until.
func (t *nameTable) add(name string, ips []netip.Addr, until, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ip := range ips {
		m := t.byIP[ip]
		if m == nil {
			m = make(map[string]time.Time)
			t.byIP[ip] = m
		}
		if _, ok := m[name]; !ok {
			if t.n >= t.max {
				t.evictLocked(now)
			}
			t.n++
		}
		if until.After(m[name]) {
			m[name] = until
		}
	}
}

// names returns the unexpired names ip was resolved for.
func (t *nameTable) names(ip netip.Addr, now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for name, until := range t.byIP[ip] {
		if now.Before(until) {
			out = append(out, name)
		}
	}
	return out
}

// evictLocked frees at least one slot: every expired entry, else the
// entry expiring soonest.
func (t *nameTable) evictLocked(now time.Time) {
	var (
		oldIP   netip.Addr
		oldName string
		oldAt   time.Time
	)
	for ip, m := range t.byIP {
		for name, until := range m {
			if !now.Before(until) {
				t.removeLocked(ip, name)
				continue
			}
			if oldAt.IsZero() || until.Before(oldAt) {
				oldIP, oldName, oldAt = ip, name, until
			}
		}
	}
	if t.n >= t.max && !oldAt.IsZero() {
		t.removeLocked(oldIP, oldName)
	}
}

func (t *nameTable) removeLocked(ip netip.Addr, name string) {
	m := t.byIP[ip]
	if _, ok := m[name]; !ok {
		return
	}
	delete(m, name)
	t.n--
	if len(m) == 0 {
		delete(t.byIP, ip)
	}
}
