// Package soak is agentkernel's load suite: one daemon of its own, N
// sandboxes each running M operations (execs mixed with file writes and
// reads, detached execs, directory copies, published ports and gateway
// traffic) at bounded concurrency, every output and exit code checked; then
// a check that nothing leaked, and a report of throughput, latency and
// memory. See docs/RELIABILITY.md.
//
// By default (go test ./...) it runs a short variant (5 x 50); `make soak`
// (AGENTKERNEL_SOAK=1) runs the full one (100 x 1000). Settings:
//
//	AGENTKERNEL_SOAK=1                 the full defaults
//	AGENTKERNEL_SOAK_SANDBOXES=N       sandboxes (5, or 100 with SOAK=1)
//	AGENTKERNEL_SOAK_EXECS=M           operations per sandbox (50, or 1000)
//	AGENTKERNEL_SOAK_CONCURRENCY=C     operations in flight (2 x cores)
//	AGENTKERNEL_SOAK_REPORT=FILE       also write the report to FILE
//	AGENTKERNEL_SOAK_ONLY=KIND         run only one kind of operation ("exec echo", …)
package soak

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/testutil"
	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

var (
	skipReason string
	akBin      string
	helperDir  string
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	flag.Parse()
	if skipReason = prerequisites(); skipReason != "" {
		fmt.Fprintf(os.Stderr, "soak: SKIPPING: %s\n", skipReason)
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "aksoak-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if akBin, _, err = testutil.BuildBinaries(dir); err != nil {
		fmt.Fprintln(os.Stderr, "soak: building the binaries:", err)
		return 1
	}
	helperDir = filepath.Join(dir, "helper")
	if err := buildHelper(helperDir); err != nil {
		fmt.Fprintln(os.Stderr, "soak: building the helper:", err)
		return 1
	}
	return m.Run()
}

func prerequisites() string {
	switch {
	case testing.Short():
		return "-short was given (the suite starts real sandboxes)"
	case runtime.GOOS != "linux":
		return "sandboxes need Linux"
	case os.Geteuid() != 0:
		return "it needs root (run `sudo make soak`)"
	}
	for _, bin := range []string{"runc", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			return bin + " is not in PATH (scripts/setup.sh installs runc and iproute2)"
		}
	}
	return ""
}

// config is the run's size.
type config struct {
	sandboxes, ops, concurrency int
	full                        bool
	report                      string
	// only, when set, is the one kind of operation to run (for finding
	// which one a problem comes with).
	only string
}

func loadConfig(t *testing.T) config {
	c := config{sandboxes: 5, ops: 50, concurrency: 2 * runtime.NumCPU()}
	if os.Getenv("AGENTKERNEL_SOAK") == "1" {
		c.full, c.sandboxes, c.ops = true, 100, 1000
	}
	for _, v := range []struct {
		env string
		p   *int
	}{
		{"AGENTKERNEL_SOAK_SANDBOXES", &c.sandboxes},
		{"AGENTKERNEL_SOAK_EXECS", &c.ops},
		{"AGENTKERNEL_SOAK_CONCURRENCY", &c.concurrency},
	} {
		if s := os.Getenv(v.env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive number", v.env, s)
			}
			*v.p = n
		}
	}
	c.report = os.Getenv("AGENTKERNEL_SOAK_REPORT")
	if c.only = os.Getenv("AGENTKERNEL_SOAK_ONLY"); c.only != "" && !slices.Contains(kinds, c.only) {
		t.Fatalf("AGENTKERNEL_SOAK_ONLY=%q: want one of %q", c.only, kinds)
	}
	return c
}

// maxFailures stops the load early: past it, more failures say nothing new.
const maxFailures = 50

// soak is one run.
type soak struct {
	t     *testing.T
	cfg   config
	h     *akhome.Home
	w     *world
	c     *client.Client
	stats *stats
	run   string // random, in every token

	failures atomic.Int64
	cancel   context.CancelFunc
	boxes    []*box
	pubHTTP  *http.Client
}

// box is one sandbox of the run.
type box struct {
	name, uuid string
	published  string // the world's address of its port 8080
	serverID   string // the detached file server
	detached   atomic.Int64
}

// fail records a failed check; the first maxFailures are reported, and
// the load stops after them.
func (s *soak) fail(format string, args ...any) {
	n := s.failures.Add(1)
	if n <= maxFailures {
		s.t.Errorf(format, args...)
	}
	if n == maxFailures {
		s.t.Errorf("%d failures: stopping the load", n)
		s.cancel()
	}
}

// TestSoak is the load suite.
func TestSoak(t *testing.T) {
	if skipReason != "" {
		t.Skip("soak: " + skipReason)
	}
	cfg := loadConfig(t)
	h, err := akhome.New("aksoak")
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	rand.Read(b[:])
	s := &soak{t: t, cfg: cfg, h: h, stats: newStats(), run: hex.EncodeToString(b[:])}
	defer func() {
		if t.Failed() {
			var logs strings.Builder
			h.DumpLogs(&logs, 32<<10)
			t.Log(logs.String())
		}
		h.RemoveHome()
	}()
	checked := false
	defer func() {
		if !checked { // a fatal failure part way: still clean up
			for _, p := range h.Teardown() {
				t.Errorf("leftover: %s", p)
			}
		}
	}()
	s.w = newWorld(t, h)
	// Idle connections close quickly, so that the daemon's descriptor
	// count after the load shows only what it keeps itself.
	s.c, err = client.New(client.WithBaseURL("unix://"+h.Socket()),
		client.WithHTTPClient(&http.Client{Transport: &http.Transport{IdleConnTimeout: time.Second, MaxIdleConnsPerHost: cfg.concurrency}}))
	if err != nil {
		t.Fatal(err)
	}
	s.pubHTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, Proxy: nil,
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return s.w.dial(ctx, addr) },
	}}
	t.Logf("soak: %d sandboxes x %d operations, %d in flight, %d cores, run %s", cfg.sandboxes, cfg.ops, cfg.concurrency, runtime.NumCPU(), s.run)

	every := 2 * time.Second
	if cfg.full {
		every = 10 * time.Second
	}
	mem := startSampler(h, every)
	time.Sleep(200 * time.Millisecond)
	idleFDs := fdCount(mustPID(t, h))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.cancel = cancel
	wall := map[string]time.Duration{}

	mem.setPhase("create")
	start := time.Now()
	s.createAll(ctx)
	wall["create"] = time.Since(start)
	h.NoteNamespaces()

	mem.setPhase("load")
	start = time.Now()
	s.load(ctx)
	wall["load"] = time.Since(start)
	s.checkDetachedTables(ctx)
	h.NoteNamespaces()

	if t.Failed() { // the supervisors' logs go with their sandboxes
		var logs strings.Builder
		h.DumpLogs(&logs, 32<<10)
		t.Log(logs.String())
	}
	mem.setPhase("remove")
	start = time.Now()
	s.removeAll()
	wall["remove"] = time.Since(start)

	// Removal finishes in the background: give it a bounded time, with
	// the daemon still up, then look for leftovers.
	mem.setPhase("drain")
	start = time.Now()
	drained := akhome.WaitFor(2*time.Minute, func() bool {
		return len(mem.supervisors()) == 0 && len(h.SandboxFiles()) == 0
	})
	drain := time.Since(start)
	if !drained {
		t.Errorf("2 minutes after the last remove: %d supervisors, sandbox files %v", len(mem.supervisors()), h.SandboxFiles())
	}
	time.Sleep(2 * time.Second) // past the client's idle timeout
	mem.sample()
	afterFDs := fdCount(mustPID(t, h))
	// A few descriptors may come and go (log files, the store's
	// connections); per sandbox or per operation would be a leak.
	if afterFDs > idleFDs+10 {
		t.Errorf("the daemon has %d descriptors open after the run, %d before it: a leak", afterFDs, idleFDs)
	}
	links, err := s.w.links()
	if err != nil || len(links) > 0 {
		t.Errorf("interfaces left in the daemon's namespace: %v %v", links, err)
	}
	mem.finish()
	dRSS, sPSS := mem.peak()

	checked = true
	problems := h.StopAndCheck()
	for _, p := range problems {
		t.Errorf("leftover: %s", p)
	}

	// The report.
	var r strings.Builder
	fmt.Fprintf(&r, "agentkernel soak, %s: %d sandboxes x %d operations, %d in flight, %d cores\n",
		time.Now().UTC().Format(time.RFC3339), cfg.sandboxes, cfg.ops, cfg.concurrency, runtime.NumCPU())
	fmt.Fprintf(&r, "wall: create %v, load %v, remove %v, teardown drain %v; failures %d; world HTTP requests %d\n",
		wall["create"].Round(time.Millisecond), wall["load"].Round(time.Millisecond), wall["remove"].Round(time.Millisecond),
		drain.Round(time.Millisecond), s.failures.Load(), s.w.served.Load())
	fmt.Fprintf(&r, "daemon descriptors: %d idle before, %d after; peak daemon RSS %.1f MiB, peak supervisors' PSS sum %.1f MiB\n",
		idleFDs, afterFDs, mib(dRSS), mib(sPSS))
	fmt.Fprintf(&r, "store events left (kept by design, bounded per sandbox): %d; leftovers: %d\n\n", h.EventsLeft(), len(problems))
	r.WriteString(s.stats.table(wall))
	r.WriteString("\nmemory over time (KiB from /proc/PID/smaps_rollup, shown in MiB):\n")
	r.WriteString(mem.table(40))
	t.Log("\n" + r.String())
	if cfg.report != "" {
		if err := os.WriteFile(cfg.report, []byte(r.String()), 0o644); err != nil {
			t.Errorf("writing the report: %v", err)
		}
	}
}

func mustPID(t *testing.T, h *akhome.Home) int {
	pid, err := h.DaemonPID()
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// parallel runs f(i) for i in [0, n) with at most c at once, stopping
// early when ctx ends.
func parallel(ctx context.Context, n, c int, f func(i int)) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				f(i)
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
}

// timed runs f under its own time limit and records its latency.
func (s *soak) timed(ctx context.Context, kind string, f func(ctx context.Context) error) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	err := f(ctx)
	s.stats.add(kind, time.Since(start), err != nil)
	if err != nil && !errors.Is(context.Cause(ctx), context.Canceled) {
		s.fail("%s: %v", kind, err)
	}
	return err == nil
}

// createAll creates the sandboxes, each with the world's name allowed, its
// port 8080 published and a file server on it.
func (s *soak) createAll(ctx context.Context) {
	s.boxes = make([]*box, s.cfg.sandboxes)
	parallel(ctx, s.cfg.sandboxes, s.cfg.concurrency, func(i int) {
		b := &box{name: fmt.Sprintf("soak-%s-%d", s.run, i)}
		ok := s.timed(ctx, "create", func(ctx context.Context) error {
			info, err := s.c.CreateSandbox(ctx, api.CreateSandboxRequest{
				Name: b.name, Network: &api.NetworkPolicy{Allow: []string{worldName}},
				Publish: []string{"0:8080"}, Dirs: []string{helperDir + ":/soak:ro"},
			})
			if err != nil {
				return err
			}
			b.uuid = info.UUID
			s.h.Remember(info.UUID)
			if info.Status != api.StatusRunning || info.Network != "gateway" {
				return fmt.Errorf("sandbox %s is %s with network %q", b.name, info.Status, info.Network)
			}
			if err := s.c.Mkdir(ctx, b.name, "/root/www"); err != nil {
				return err
			}
			d, err := s.c.ExecDetached(ctx, b.name, api.ExecRequest{Command: []string{"/soak/helper", "serve", ":8080", "/root/www"}})
			if err != nil {
				return err
			}
			b.serverID = d.ID
			b.detached.Add(1)
			n, err := s.c.SandboxNetwork(ctx, b.name)
			if err != nil {
				return err
			}
			if len(n.Published) != 1 || !strings.HasPrefix(n.Published[0].Address, "127.0.0.1:") {
				return fmt.Errorf("sandbox %s published %+v", b.name, n.Published)
			}
			b.published = n.Published[0].Address
			return nil
		})
		if ok {
			s.boxes[i] = b
		}
	})
}

// load runs the operations: op j of every sandbox before op j+1 of any,
// so that all of them stay busy until the end.
func (s *soak) load(ctx context.Context) {
	var live []*box
	for _, b := range s.boxes {
		if b != nil {
			live = append(live, b)
		}
	}
	if len(live) == 0 {
		s.t.Error("no sandbox to load")
		return
	}
	n := len(live) * s.cfg.ops
	var done atomic.Int64
	progress := time.NewTicker(time.Minute)
	defer progress.Stop()
	go func() {
		for range progress.C {
			s.t.Logf("soak: %d/%d operations, %d failures", done.Load(), n, s.failures.Load())
		}
	}()
	parallel(ctx, n, s.cfg.concurrency, func(k int) {
		s.op(ctx, live[k%len(live)], k/len(live))
		done.Add(1)
	})
}

// kinds are the operations, in the order kindOf picks them.
var kinds = []string{"cp dir in+out", "file write+read+cat", "gateway GET", "published port GET", "detached exec", "exec exit!=0", "exec echo"}

// kindOf is operation j's kind: each one runs exactly one exec (plain,
// failing on purpose, or detached) and checks every output.
func (s *soak) kindOf(j int) string {
	if s.cfg.only != "" {
		return s.cfg.only
	}
	switch {
	case j%50 == 25: // before j%20 == 5, which 25 also is
		return "cp dir in+out"
	case j%20 == 0:
		return "file write+read+cat"
	case j%20 == 5:
		return "gateway GET"
	case j%20 == 10:
		return "published port GET"
	case j%20 == 15:
		return "detached exec"
	case j%2 == 1:
		return "exec exit!=0"
	}
	return "exec echo"
}

// op runs operation j on b.
func (s *soak) op(ctx context.Context, b *box, j int) {
	tok := fmt.Sprintf("%s-%s-%d", s.run, b.name[strings.LastIndexByte(b.name, '-')+1:], j)
	kind := s.kindOf(j)
	s.timed(ctx, kind, func(ctx context.Context) error {
		switch kind {
		case "cp dir in+out":
			return s.copyDir(ctx, b, tok)
		case "file write+read+cat":
			return s.files(ctx, b, tok)
		case "gateway GET":
			r, err := s.exec(ctx, b, "/soak/helper", "get", "http://"+worldName+"/"+tok)
			return want(err, r, "soak "+tok, "", 0)
		case "published port GET":
			return s.publish(ctx, b, tok)
		case "detached exec":
			return s.detached(ctx, b, tok, j%3)
		case "exec exit!=0":
			code := j%5 + 1
			r, err := s.exec(ctx, b, "sh", "-c", fmt.Sprintf("printf %%s %s; printf %%s err-%s >&2; exit %d", tok, tok, code))
			return want(err, r, tok, "err-"+tok, code)
		}
		r, err := s.exec(ctx, b, "echo", tok)
		return want(err, r, tok+"\n", "", 0)
	})
}

func (s *soak) exec(ctx context.Context, b *box, argv ...string) (api.ExecResponse, error) {
	return s.c.Exec(ctx, b.name, api.ExecRequest{Command: argv, Timeout: "60s"})
}

// want checks an exec's result.
func want(err error, r api.ExecResponse, stdout, stderr string, code int) error {
	switch {
	case err != nil:
		return err
	case r.Stdout != stdout || r.Stderr != stderr || r.ExitCode != code:
		return fmt.Errorf("got stdout %q stderr %q exit %d (%s), want %q %q %d", r.Stdout, r.Stderr, r.ExitCode, r.Error, stdout, stderr, code)
	case len(r.Output) != len(stdout)+len(stderr) || !strings.Contains(r.Output, stdout) || !strings.Contains(r.Output, stderr):
		return fmt.Errorf("output %q is not stdout %q and stderr %q interleaved", r.Output, stdout, stderr)
	}
	return nil
}

// files writes a file through the API, reads it back, and cats it.
func (s *soak) files(ctx context.Context, b *box, tok string) error {
	p := "/root/f-" + tok
	body := strings.Repeat(tok+"\n", 64)
	if err := s.c.WriteFile(ctx, b.name, p, strings.NewReader(body), 0o644); err != nil {
		return err
	}
	got, err := s.c.ReadFile(ctx, b.name, p)
	if err != nil {
		return err
	}
	if string(got) != body {
		return fmt.Errorf("read %s back: %d bytes, want %d", p, len(got), len(body))
	}
	r, err := s.exec(ctx, b, "cat", p)
	return want(err, r, body, "", 0)
}

// publish puts a file in the server's directory and fetches it through
// the published port, then checks it with an exec.
func (s *soak) publish(ctx context.Context, b *box, tok string) error {
	body := "published " + tok + "\n"
	if err := s.c.WriteFile(ctx, b.name, "/root/www/"+tok, strings.NewReader(body), 0o644); err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+b.published+"/"+tok, nil)
	res, err := s.pubHTTP.Do(req)
	if err != nil {
		return fmt.Errorf("GET through %s: %w", b.published, err)
	}
	got, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || string(got) != body {
		return fmt.Errorf("GET through %s: %d %q %v, want %q", b.published, res.StatusCode, got, err, body)
	}
	r, err := s.exec(ctx, b, "rm", "/root/www/"+tok)
	return want(err, r, "", "", 0)
}

// detached starts a detached exec and waits for its exit code and output.
func (s *soak) detached(ctx context.Context, b *box, tok string, code int) error {
	d, err := s.c.ExecDetached(ctx, b.name, api.ExecRequest{Command: []string{"sh", "-c", fmt.Sprintf("echo %s; echo e%s >&2; exit %d", tok, tok, code)}})
	if err != nil {
		return err
	}
	b.detached.Add(1)
	for d.Status == api.DetachedRunning {
		select {
		case <-ctx.Done():
			return fmt.Errorf("detached %s still running: %w", d.ID, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if d, err = s.c.GetDetached(ctx, b.name, d.ID); err != nil {
			return err
		}
	}
	if d.ExitCode == nil || *d.ExitCode != code {
		return fmt.Errorf("detached %s ended %s with exit %v, want %d", d.ID, d.Status, d.ExitCode, code)
	}
	logs, err := s.c.DetachedLogs(ctx, b.name, d.ID)
	if err != nil {
		return err
	}
	if logs.Stdout != tok+"\n" || logs.Stderr != "e"+tok+"\n" {
		return fmt.Errorf("detached %s logs %+v", d.ID, logs)
	}
	return nil
}

// copyDir copies a small tree in (as `cp DIR sandbox:`), checks it with an
// exec, and copies it out again.
func (s *soak) copyDir(ctx context.Context, b *box, tok string) error {
	files := map[string]string{
		"a.txt":         "a " + tok + "\n",
		"sub/b.txt":     strings.Repeat("b "+tok+"\n", 512),
		"sub/deep/c.sh": "#!/bin/sh\necho c " + tok + "\n",
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for d := path.Dir("cp/" + n); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	dl := make([]string, 0, len(dirs))
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	for _, d := range dl {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755})
	}
	for _, n := range names {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "cp/" + n, Mode: 0o755, Size: int64(len(files[n]))})
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	dir := "/root/cp-" + tok
	if err := s.c.Mkdir(ctx, b.name, dir); err != nil {
		return err
	}
	if err := s.c.TarIn(ctx, b.name, dir, &buf); err != nil {
		return fmt.Errorf("copy in: %w", err)
	}
	r, err := s.exec(ctx, b, "sh", dir+"/cp/sub/deep/c.sh")
	if err := want(err, r, "c "+tok+"\n", "", 0); err != nil {
		return err
	}
	rc, err := s.c.TarOut(ctx, b.name, dir+"/cp")
	if err != nil {
		return fmt.Errorf("copy out: %w", err)
	}
	defer rc.Close()
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("copy out: %w", err)
		}
		if hd.Typeflag != tar.TypeReg {
			continue
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			return fmt.Errorf("copy out %s: %w", hd.Name, err)
		}
		n := strings.TrimPrefix(strings.TrimPrefix(hd.Name, "./"), "cp/")
		got[n] = string(c)
	}
	if len(got) != len(files) {
		return fmt.Errorf("copied out %d files, want %d: %v", len(got), len(files), keys(got))
	}
	for n, c := range files {
		if got[n] != c {
			return fmt.Errorf("copied out %s: %d bytes, want %d", n, len(got[n]), len(c))
		}
	}
	return nil
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkDetachedTables: after the load every sandbox still lists its file
// server as running, and no more detached commands than the agent keeps.
func (s *soak) checkDetachedTables(ctx context.Context) {
	for _, b := range s.boxes {
		if b == nil || ctx.Err() != nil {
			continue
		}
		s.timed(ctx, "list detached", func(ctx context.Context) error {
			list, err := s.c.ListDetached(ctx, b.name)
			if err != nil {
				return err
			}
			found := false
			for _, d := range list {
				found = found || (d.ID == b.serverID && d.Status == api.DetachedRunning)
			}
			if !found {
				return fmt.Errorf("sandbox %s: the file server %s is not listed as running among %d detached (of %d started)", b.name, b.serverID, len(list), b.detached.Load())
			}
			if int64(len(list)) > b.detached.Load() {
				return fmt.Errorf("sandbox %s lists %d detached, only %d were started", b.name, len(list), b.detached.Load())
			}
			return nil
		})
	}
}

// removeAll removes every sandbox the run created; each must then be gone
// from the list.
func (s *soak) removeAll() {
	ctx := context.Background() // removal runs even after a stopped load
	parallel(ctx, len(s.boxes), s.cfg.concurrency, func(i int) {
		b := s.boxes[i]
		if b == nil {
			return
		}
		s.timed(ctx, "remove", func(ctx context.Context) error { return s.c.RemoveSandbox(ctx, b.name) })
	})
	list, err := s.c.ListSandboxes(ctx)
	if err != nil {
		s.fail("list after removal: %v", err)
	}
	for _, sb := range list {
		s.fail("sandbox %s (%s) still listed after its removal", sb.Name, sb.Status)
	}
}
