package netgw

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
)

// TestBenchmarkReport measures what docs/BENCHMARKS.md reports: a 100 MB
// download through the gateway against the same download without it, the
// connect latency the gateway adds, and memory per gateway. It runs only
// with NETGW_BENCH=1 (and root), and prints its numbers with t.Log.
func TestBenchmarkReport(t *testing.T) {
	if os.Getenv("NETGW_BENCH") != "1" {
		t.Skip("set NETGW_BENCH=1 to measure")
	}
	w := newWorld(t)
	const size = 100 << 20
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(w.allowedIP, 9000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	chunk := make([]byte, 256<<10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.CopyN(c, &repeat{chunk}, size)
			}()
		}
	}()
	rule := policy.Policy{Rules: []policy.Rule{{CIDR: netip.PrefixFrom(w.allowedIP, 32), Ports: []uint16{9000}, Proto: policy.TCP}}}
	mtu := uint32(1500)
	if v := os.Getenv("NETGW_BENCH_MTU"); v != "" {
		fmt.Sscan(v, &mtu)
	}
	addr := w.allowedIP.String() + ":9000"
	// Memory, first (before the download's buffers are garbage): attach
	// gateways and measure the live heap.
	const n = 20
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	newSandbox(t, w, Config{Policy: rule, MTU: mtu}).do(helperReq{Op: "dial", Addr: addr, N: 1}) // warm-up
	before := heap()
	for range n {
		o := newSandbox(t, w, Config{Policy: rule, MTU: mtu})
		o.do(helperReq{Op: "dial", Addr: addr, N: 1})
	}
	after := heap()
	t.Logf("memory: %d KiB heap per attached gateway (%d gateways, after one flow each)",
		(int64(after)-int64(before))/n/1024, n)
	s := newSandbox(t, w, Config{Policy: rule, MTU: mtu})
	t.Logf("MTU %d", mtu)
	direct := func(req helperReq) helperResp { // the same helper, outside any sandbox
		return (&sandbox{t: t, ns: ""}).doDirect(req)
	}
	for range 2 { // warm up, then measure the best of 3
		s.do(helperReq{Op: "download", Addr: addr})
	}
	best := func(f func() helperResp) time.Duration {
		var b time.Duration
		for range 3 {
			r := f()
			if r.Connected != size {
				t.Fatalf("download: %+v", r)
			}
			if b == 0 || r.Elapsed < b {
				b = r.Elapsed
			}
		}
		return b
	}
	dGW := best(func() helperResp { return s.do(helperReq{Op: "download", Addr: addr}) })
	dDirect := best(func() helperResp { return direct(helperReq{Op: "download", Addr: addr}) })
	mbps := func(d time.Duration) float64 { return float64(size) / d.Seconds() / 1e6 }
	t.Logf("100 MB download: gateway %v (%.0f MB/s), direct %v (%.0f MB/s), ratio %.2f",
		dGW, mbps(dGW), dDirect, mbps(dDirect), dGW.Seconds()/dDirect.Seconds())

	const conns = 1000
	cGW := s.do(helperReq{Op: "dial", Addr: addr, N: conns})
	cDirect := direct(helperReq{Op: "dial", Addr: addr, N: conns})
	if cGW.Connected != conns || cDirect.Connected != conns {
		t.Fatalf("connects: %+v %+v", cGW, cDirect)
	}
	t.Logf("connect (sequential, %d): gateway %v each, direct %v each, added %v",
		conns, cGW.Elapsed/conns, cDirect.Elapsed/conns, (cGW.Elapsed-cDirect.Elapsed)/conns)

}

// repeat reads its chunk over and over.
type repeat struct{ b []byte }

func (r *repeat) Read(p []byte) (int, error) { return copy(p, r.b), nil }

// doDirect runs the helper in the test world itself, with no gateway.
func (s *sandbox) doDirect(req helperReq) helperResp {
	r, err := runHelperCmd(exec.Command(os.Args[0]), req)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}
