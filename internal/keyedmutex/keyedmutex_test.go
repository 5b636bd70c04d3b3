package keyedmutex

import (
	"sync"
	"testing"
	"time"
)

// TestKeyedMutex checks that one key is exclusive, other keys are not, and
// entries are freed.
func TestKeyedMutex(t *testing.T) {
	var k Mutex
	var mu sync.Mutex
	inside := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		key := []string{"a", "b"}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := k.Lock(key)
			mu.Lock()
			inside[key]++
			if inside[key] > 1 {
				t.Errorf("two holders of %q", key)
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside[key]--
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
	if n := k.Len(); n != 0 {
		t.Errorf("entries left: %d", n)
	}
}
