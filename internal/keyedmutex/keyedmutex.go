// Package keyedmutex provides one mutex per key, created on demand and
// freed when nobody holds or waits for it: per-sandbox lifecycle locks in
// the sandbox manager, per-layer locks in the image store.
package keyedmutex

import "sync"

// Mutex is a set of mutexes by key. The zero value is ready to use; it
// must not be copied after first use.
type Mutex struct {
	// mu guards m.
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	mu   sync.Mutex
	refs int // holders and waiters; guarded by Mutex.mu
}

// Lock locks key and returns its unlock function, which must be called
// exactly once.
func (k *Mutex) Lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*entry{}
	}
	e := k.m[key]
	if e == nil {
		e = &entry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// Len returns how many keys are held or waited for.
func (k *Mutex) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
