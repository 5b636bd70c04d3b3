// Command bench measures agentkernel's API latencies against a running
// daemon through pkg/client, for scripts/bench.sh (see docs/BENCHMARKS.md):
//
//	bench -socket PATH exec   -sandbox NAME -n 500   exec round trips of `true`
//	bench -socket PATH stream -sandbox NAME -n 500   the same over the streaming exec
//	bench -socket PATH create -n 20                  concurrent creates (then removes)
//	bench -socket PATH phases -n 30                  create, exec `true`, remove, one after the other
//	bench -listen ADDR otlp-sink                     an OTLP/HTTP receiver that accepts and drops
//	                                                 what it is sent, until SIGTERM (for traces on)
//
// It prints one line per measurement (phases: one per phase): name, count, p50, p90, p99, max and
// mean in milliseconds, tab-separated, after a header. Percentiles are
// nearest-rank over the sorted samples.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

func main() {
	socket := flag.String("socket", "", "the daemon's Unix socket (required)")
	sandbox := flag.String("sandbox", "", "a running sandbox (exec, stream)")
	n := flag.Int("n", 500, "iterations (exec, stream) or concurrent creates (create)")
	warmup := flag.Int("warmup", 20, "unmeasured iterations first (exec, stream)")
	prefix := flag.String("prefix", "bench-c-", "name prefix of created sandboxes (create)")
	listen := flag.String("listen", "", "the address the OTLP sink listens on (otlp-sink)")
	flag.Parse()
	if flag.Arg(0) == "otlp-sink" {
		if err := otlpSink(*listen); err != nil {
			fail(err)
		}
		return
	}
	if *socket == "" || flag.NArg() != 1 || *n <= 0 || *n > 100000 {
		fmt.Fprintln(os.Stderr, "usage: bench -socket PATH [-sandbox NAME] [-n N] exec|stream|create|phases\n       bench -listen ADDR otlp-sink")
		os.Exit(2)
	}
	c, err := client.New(client.WithBaseURL("unix://" + *socket))
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	var samples []time.Duration
	switch flag.Arg(0) {
	case "exec":
		samples, err = repeat(*n, *warmup, func() error { return execTrue(ctx, c, *sandbox) })
	case "stream":
		samples, err = repeat(*n, *warmup, func() error { return streamTrue(ctx, c, *sandbox) })
	case "create":
		samples, err = createConcurrently(ctx, c, *prefix, *n)
	case "phases":
		var ph map[string][]time.Duration
		if ph, err = phases(ctx, c, *prefix, *n); err != nil {
			fail(err)
		}
		fmt.Println("name\tn\tp50_ms\tp90_ms\tp99_ms\tmax_ms\tmean_ms")
		for _, name := range []string{"create", "exec", "remove", "total"} {
			fmt.Println(summary(name, ph[name]))
		}
		return
	default:
		err = fmt.Errorf("unknown measurement %q", flag.Arg(0))
	}
	if err != nil {
		fail(err)
	}
	fmt.Println("name\tn\tp50_ms\tp90_ms\tp99_ms\tmax_ms\tmean_ms")
	fmt.Println(summary(flag.Arg(0), samples))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// repeat times fn n times, after warmup unmeasured calls.
func repeat(n, warmup int, fn func() error) ([]time.Duration, error) {
	for i := 0; i < warmup; i++ {
		if err := fn(); err != nil {
			return nil, err
		}
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := fn(); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

func execTrue(ctx context.Context, c *client.Client, name string) error {
	res, err := c.Exec(ctx, name, api.ExecRequest{Command: []string{"true"}})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("true exited %d: %s", res.ExitCode, res.Error)
	}
	return err
}

func streamTrue(ctx context.Context, c *client.Client, name string) error {
	s, err := c.ExecStream(ctx, name, api.ExecRequest{Command: []string{"true"}})
	if err != nil {
		return err
	}
	defer s.Close()
	s.Stdin().Close()
	go io.Copy(io.Discard, s.Stderr())
	io.Copy(io.Discard, s.Stdout())
	exit, err := s.Wait()
	if err == nil && exit.ExitCode != 0 {
		err = fmt.Errorf("true exited %d", exit.ExitCode)
	}
	return err
}

// createConcurrently creates n sandboxes at once, each timed from its own
// request to its answer, then removes them all.
func createConcurrently(ctx context.Context, c *client.Client, prefix string, n int) ([]time.Duration, error) {
	out := make([]time.Duration, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			t0 := time.Now()
			_, errs[i] = c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: fmt.Sprintf("%s%d", prefix, i), NoPool: true})
			out[i] = time.Since(t0)
		}(i)
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	var rmWG sync.WaitGroup
	for i := 0; i < n; i++ {
		rmWG.Add(1)
		go func(i int) {
			defer rmWG.Done()
			if err := c.RemoveSandbox(ctx, fmt.Sprintf("%s%d", prefix, i)); err != nil && errs[i] == nil {
				errs[i] = err
			}
		}(i)
	}
	rmWG.Wait()
	fmt.Fprintf(os.Stderr, "bench: %d concurrent creates took %.0f ms wall\n", n, ms(wall))
	return out, errors.Join(errs...)
}

// phases times the steps of what `agentkernel run -- true` does, n times
// in a row: create (and start) a sandbox, exec true, remove it.
func phases(ctx context.Context, c *client.Client, prefix string, n int) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%sp%d", prefix, i)
		t0 := time.Now()
		if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: name, Ephemeral: true, NoPool: true}); err != nil {
			return nil, err
		}
		t1 := time.Now()
		err := streamTrue(ctx, c, name)
		t2 := time.Now()
		if rerr := c.RemoveSandbox(ctx, name); err == nil {
			err = rerr
		}
		t3 := time.Now()
		if err != nil {
			return nil, err
		}
		out["create"] = append(out["create"], t1.Sub(t0))
		out["exec"] = append(out["exec"], t2.Sub(t1))
		out["remove"] = append(out["remove"], t3.Sub(t2))
		out["total"] = append(out["total"], t3.Sub(t0))
	}
	return out, nil
}

func summary(name string, d []time.Duration) string {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var total time.Duration
	for _, v := range s {
		total += v
	}
	pct := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return fmt.Sprintf("%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f", name, len(s),
		ms(pct(0.50)), ms(pct(0.90)), ms(pct(0.99)), ms(s[len(s)-1]), ms(total/time.Duration(len(s))))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// otlpSink accepts OTLP/HTTP exports on addr and drops them, so that a
// daemon with tracing on pays for building and sending its spans as it
// would in production. On SIGTERM or SIGINT it prints how many exports
// and bytes it took (a run that sent none measured nothing).
func otlpSink(addr string) error {
	if addr == "" {
		return errors.New("otlp-sink needs -listen ADDR")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var exports, bytes atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 64<<20))
		exports.Add(1)
		bytes.Add(n)
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.WriteHeader(http.StatusOK)
	})}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: otlp-sink took %d exports, %d bytes\n", exports.Load(), bytes.Load())
	return nil
}
