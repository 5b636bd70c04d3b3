package soak

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
)

// stats collects each operation's latency by kind.
type stats struct {
	mu   sync.Mutex
	lat  map[string][]time.Duration
	errs map[string]int
}

func newStats() *stats {
	return &stats{lat: map[string][]time.Duration{}, errs: map[string]int{}}
}

func (s *stats) add(kind string, d time.Duration, failed bool) {
	s.mu.Lock()
	s.lat[kind] = append(s.lat[kind], d)
	if failed {
		s.errs[kind]++
	}
	s.mu.Unlock()
}

// quantile is the q-quantile (nearest rank) of sorted ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(q*float64(len(ds))+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// table prints count, failures, throughput over wall (the phase's
// duration), p50, p99 and max per kind.
func (s *stats) table(wall map[string]time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	kinds := make([]string, 0, len(s.lat))
	for k := range s.lat {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tcount\tfailed\tper s\tp50 ms\tp99 ms\tmax ms\t")
	for _, k := range kinds {
		ds := append([]time.Duration(nil), s.lat[k]...)
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		rate := "-"
		if w := wall[phaseOf(k)]; w > 0 {
			rate = fmt.Sprintf("%.1f", float64(len(ds))/w.Seconds())
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", k, len(ds), s.errs[k], rate,
			ms(quantile(ds, 0.50)), ms(quantile(ds, 0.99)), ms(quantile(ds, 1)))
	}
	tw.Flush()
	return b.String()
}

// phaseOf is the phase whose wall time an operation's throughput is over.
func phaseOf(kind string) string {
	switch kind {
	case "create", "remove":
		return kind
	}
	return "load"
}

// memSample is the memory of the daemon and the supervisors at one time.
type memSample struct {
	at                 time.Duration
	phase              string
	daemonRSS, daemonP int64 // KiB
	daemonFDs          int
	supervisors        int
	supPSS, supMaxRSS  int64 // KiB: the sum of PSS, the largest RSS
}

// sampler records memSamples every interval until stopped.
type sampler struct {
	h     *akhome.Home
	start time.Time

	mu      sync.Mutex
	phase   string
	samples []memSample
	stop    chan struct{}
	done    chan struct{}
}

func startSampler(h *akhome.Home, every time.Duration) *sampler {
	s := &sampler{h: h, start: time.Now(), phase: "start", stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) setPhase(p string) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
	s.sample()
}

func (s *sampler) finish() {
	close(s.stop)
	<-s.done
}

func (s *sampler) sample() {
	m := memSample{at: time.Since(s.start)}
	if pid, err := s.h.DaemonPID(); err == nil {
		m.daemonRSS, m.daemonP = rollup(pid)
		m.daemonFDs = fdCount(pid)
	}
	for _, pid := range s.supervisors() {
		rss, pss := rollup(pid)
		m.supervisors++
		m.supPSS += pss
		m.supMaxRSS = max(m.supMaxRSS, rss)
	}
	s.mu.Lock()
	m.phase = s.phase
	s.samples = append(s.samples, m)
	s.mu.Unlock()
}

// supervisors are the home's `agentkernel supervise` processes.
func (s *sampler) supervisors() []int {
	var out []int
	for _, pid := range s.h.Processes() {
		if f := strings.Fields(akhome.Cmdline(pid)); len(f) >= 2 && filepath.Base(f[0]) == "agentkernel" && f[1] == "supervise" {
			out = append(out, pid)
		}
	}
	return out
}

// table prints the samples, at most about rows of them (evenly spaced,
// always the first and last of each phase).
func (s *sampler) table(rows int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	step := max(1, len(s.samples)/rows)
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "t s\tphase\tdaemon RSS MiB\tdaemon PSS MiB\tdaemon fds\tsupervisors\tsup PSS sum MiB\tsup RSS max MiB\t")
	for i, m := range s.samples {
		edge := i == 0 || i == len(s.samples)-1 || s.samples[i-1].phase != m.phase || s.samples[i+1].phase != m.phase
		if !edge && i%step != 0 {
			continue
		}
		fmt.Fprintf(tw, "%.0f\t%s\t%.1f\t%.1f\t%d\t%d\t%.1f\t%.1f\t\n", m.at.Seconds(), m.phase,
			mib(m.daemonRSS), mib(m.daemonP), m.daemonFDs, m.supervisors, mib(m.supPSS), mib(m.supMaxRSS))
	}
	tw.Flush()
	return b.String()
}

// peak returns the largest daemon RSS and supervisors' PSS sum sampled.
func (s *sampler) peak() (daemonRSS, supPSS int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.samples {
		daemonRSS, supPSS = max(daemonRSS, m.daemonRSS), max(supPSS, m.supPSS)
	}
	return
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// rollup reads Rss and Pss (KiB) from /proc/PID/smaps_rollup.
func rollup(pid int) (rss, pss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(fl[1], 10, 64)
		switch fl[0] {
		case "Rss:":
			rss = n
		case "Pss:":
			pss = n
		}
	}
	return rss, pss
}

// fdCount is how many file descriptors pid has open.
func fdCount(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}
