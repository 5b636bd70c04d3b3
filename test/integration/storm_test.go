package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TestMisbehavingStorm is the misbehaving-sandbox suite (issue 16, item 3):
// at once, in sandboxes of one daemon, a fork bomb, a memory hog past its
// limit, a disk filled to its limit, a flood of stdout, 10,000 connections
// through the gateway and a process that ignores SIGTERM. Each must hit its
// own limit with a status that says which; meanwhile a neighbour sandbox keeps running execs, the
// daemon keeps answering, and the host keeps its free memory. The
// neighbour's exec latency during the storm is measured against its quiet
// value and logged (docs/RELIABILITY.md has the figures): it is a
// measurement, not an assertion, on a 2-core host that other tests share,
// unless AGENTKERNEL_STORM_STRICT=1 asks for the 2x bound.
func TestMisbehavingStorm(t *testing.T) {
	requireEnv(t)
	w := newNetWorld(t)
	c := w.e.client(t)
	ctx := context.Background()
	create := func(name string, memoryMB, diskMB int) {
		t.Helper()
		req := api.CreateSandboxRequest{Name: name, MemoryMB: memoryMB, DiskMB: diskMB, Network: &api.NetworkPolicy{Allow: []string{"allowed.test"}},
			Dirs: []string{w.probeDir + ":/probe:ro"}}
		if _, err := c.CreateSandbox(ctx, req); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		t.Cleanup(func() { c.RemoveSandbox(context.Background(), name) })
	}
	for _, n := range []string{"st-neighbour", "st-bomb", "st-flood", "st-conns", "st-term"} {
		create(n, 0, 0)
	}
	create("st-hog", 128, 0)
	create("st-disk", 0, 128)

	quiet := neighbourLatencies(t, c, "st-neighbour", 200, nil)

	memFloor := minMemAvailable(t)
	defer memFloor.stop()
	storms := map[string]func() error{
		"fork bomb": func() error {
			// Bounded: each process sleeps 3 s and exits, so the bomb ends alone.
			res, err := c.Exec(ctx, "st-bomb", api.ExecRequest{Command: []string{"sh", "-c",
				"i=0; while [ $i -lt 3000 ]; do sleep 3 & i=$((i+1)); done 2>/dev/null; wait; echo done"}, Timeout: "120s"})
			if err != nil || !strings.Contains(res.Error, "process limit") {
				return fmt.Errorf("want a status naming the process limit, got %+v, %v", res, err)
			}
			return nil
		},
		"memory hog": func() error {
			// The shell keeps all of 1 GiB in one variable.
			res, err := c.Exec(ctx, "st-hog", api.ExecRequest{Command: []string{"sh", "-c", "a=$(head -c 1073741824 /dev/zero | tr '\\0' a); echo ${#a}"}, Timeout: "120s"})
			if err != nil || res.ExitCode == 0 || !strings.Contains(res.Error, "out-of-memory") {
				return fmt.Errorf("want a status naming the out-of-memory killer, got exit %d %q, %v", res.ExitCode, res.Error, err)
			}
			return nil
		},
		"fills its disk": func() error {
			res, err := c.Exec(ctx, "st-disk", api.ExecRequest{Command: []string{"dd", "if=/dev/zero", "of=/root/fill", "bs=1M", "count=512"}, Timeout: "120s"})
			if err != nil || res.ExitCode == 0 || !strings.Contains(res.Error, "disk is full") {
				return fmt.Errorf("want a status naming the full disk, got exit %d %q, %v", res.ExitCode, res.Error, err)
			}
			return nil
		},
		"stdout flood": func() error {
			_, err := c.Exec(ctx, "st-flood", api.ExecRequest{Command: []string{"head", "-c", "400000000", "/dev/zero"}, Timeout: "120s"})
			if !errors.Is(err, errdefs.ErrTooLarge) {
				return fmt.Errorf("want the output limit's error, got %v", err)
			}
			return nil
		},
		"10,000 connections": func() error {
			b, _ := json.Marshal(map[string]any{"op": "conns", "addr": allowedIP + ":80", "host": "allowed.test", "n": 10000})
			res, err := c.Exec(ctx, "st-conns", api.ExecRequest{Command: []string{"/probe/probe", string(b)}, Timeout: "300s"})
			if err != nil || res.ExitCode != 0 {
				return fmt.Errorf("probe: %+v, %v", res, err)
			}
			var r struct {
				Opened, Failed int
				Err            string
			}
			if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
				return fmt.Errorf("probe answer %q: %v", res.Stdout, err)
			}
			// The gateway proxies at most MaxFlows (1,024) at once and
			// resets the rest.
			if r.Opened < 900 || r.Opened > 1024 || r.Opened+r.Failed != 10000 {
				return fmt.Errorf("want about 1,024 connections held and the rest refused, got %+v", r)
			}
			log, err := c.NetworkLog(ctx, "st-conns", 5000)
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(log, func(ev api.NetworkEvent) bool { return ev.Rule == "limit:flows" }) {
				return fmt.Errorf("no denial by rule limit:flows in the sandbox's network log (%d records)", len(log))
			}
			return nil
		},
		"ignores SIGTERM": func() error {
			if _, err := c.ExecDetached(ctx, "st-term", api.ExecRequest{Command: []string{"sh", "-c", "trap '' TERM; while :; do sleep 1; done"}}); err != nil {
				return err
			}
			start := time.Now()
			info, err := c.StopSandbox(ctx, "st-term")
			if err != nil || info.Status != api.StatusStopped {
				return fmt.Errorf("stop: %+v, %v", info, err)
			}
			t.Logf("stop of a sandbox whose process ignores SIGTERM took %v", time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := map[string]error{}
	done := make(chan struct{})
	only := os.Getenv("AGENTKERNEL_STORM_ONLY") // one storm, to tell causes apart
	for name, storm := range storms {
		if only != "" && name != only {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := storm(); err != nil {
				mu.Lock()
				failed[name] = err
				mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	during := neighbourLatencies(t, c, "st-neighbour", 200, done)
	<-done
	floor := memFloor.stop()
	for name, err := range failed {
		t.Errorf("%s: %v", name, err)
	}

	// Every misbehaving sandbox that is still meant to run does; the
	// daemon answers.
	for _, n := range []string{"st-bomb", "st-hog", "st-flood", "st-conns", "st-disk"} {
		if only != "" {
			break
		}
		if !waitFor(30*time.Second, func() bool {
			res, err := c.Exec(ctx, n, api.ExecRequest{Command: []string{"echo", "alive"}})
			return err == nil && res.Stdout == "alive\n"
		}) {
			t.Errorf("%s does not exec after its storm", n)
		}
	}
	q50, q99 := percentile(quiet, 50), percentile(quiet, 99)
	d50, d99 := percentile(during, 50), percentile(during, 99)
	t.Logf("neighbour exec: quiet p50 %v p99 %v; during the storm (%d execs) p50 %v p99 %v; p99 ratio %.2fx; lowest MemAvailable %d MiB",
		q50, q99, len(during), d50, d99, float64(d99)/float64(q99), floor>>20)
	if os.Getenv("AGENTKERNEL_STORM_STRICT") == "1" && d99 > 2*q99 {
		t.Errorf("the neighbour's exec p99 went from %v to %v, more than 2x", q99, d99)
	}
	if floor < 1<<30 {
		t.Errorf("the host's MemAvailable fell to %d MiB during the storm, under the 1 GiB margin", floor>>20)
	}
}

// neighbourLatencies runs `true` in name, at least n times and, when until
// is not nil, until it is closed; it returns each round trip.
func neighbourLatencies(t *testing.T, c *client.Client, name string, n int, until <-chan struct{}) []time.Duration {
	t.Helper()
	var out []time.Duration
	for i := 0; ; i++ {
		if i >= n {
			if until == nil {
				return out
			}
			select {
			case <-until:
				return out
			default:
			}
		}
		start := time.Now()
		res, err := c.Exec(context.Background(), name, api.ExecRequest{Command: []string{"true"}})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("neighbour exec %d: %+v, %v", i, res, err)
		}
		out = append(out, time.Since(start))
	}
}

// percentile returns the p-th percentile of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)]
}

// memSampler records the lowest MemAvailable seen until stop.
type memSampler struct {
	stopCh chan struct{}
	done   chan int64
}

func minMemAvailable(t *testing.T) *memSampler {
	m := &memSampler{stopCh: make(chan struct{}), done: make(chan int64, 1)}
	go func() {
		lowest := int64(-1)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if v := memAvailable(); v >= 0 && (lowest < 0 || v < lowest) {
				lowest = v
			}
			select {
			case <-m.stopCh:
				m.done <- lowest
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *memSampler) stop() int64 {
	select {
	case <-m.stopCh:
	default:
		close(m.stopCh)
		v := <-m.done
		m.done <- v
	}
	v := <-m.done
	m.done <- v
	return v
}

// memAvailable reads MemAvailable from /proc/meminfo, in bytes.
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return -1
}
