package agent

import (
	"context"
	"io"
	"sort"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
)

func TestZZTiming(t *testing.T) {
	srv := New(Config{})
	defer srv.Close()
	host, guest := socketpair(t)
	go srv.ServeConn(context.Background(), guest)
	c, _ := agentproto.NewClient(host)
	defer c.Close()
	var ping, start, wait, closeD []time.Duration
	for range 500 {
		t0 := time.Now()
		c.Ping(context.Background())
		t1 := time.Now()
		p, _ := c.Exec(context.Background(), agentproto.ExecRequest{Argv: []string{"true"}})
		t2 := time.Now()
		go io.Copy(io.Discard, p.Stderr())
		io.Copy(io.Discard, p.Stdout())
		p.Wait()
		t3 := time.Now()
		p.Close()
		t4 := time.Now()
		ping = append(ping, t1.Sub(t0))
		start = append(start, t2.Sub(t1))
		wait = append(wait, t3.Sub(t2))
		closeD = append(closeD, t4.Sub(t3))
	}
	for name, d := range map[string][]time.Duration{"ping": ping, "start": start, "wait": wait, "close": closeD} {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		t.Logf("%s p50 %v", name, d[len(d)/2])
	}
}
