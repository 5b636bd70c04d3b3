package dns

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/agentkernel/agentkernel/internal/netgw/dnstest"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
)

var loopback = netip.MustParsePrefix("127.0.0.0/8")

type recorder struct {
	mu      sync.Mutex
	records map[string][]netip.Addr
	answers []Answer
}

func (r *recorder) record(name string, ips []netip.Addr, ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records[name] = ips
}

func (r *recorder) audit(a Answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers = append(r.answers, a)
}

func newServer(t *testing.T, up *dnstest.Server, p policy.Policy, mod func(*Config)) (*Server, *recorder) {
	t.Helper()
	c, err := policy.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{records: map[string][]netip.Addr{}}
	cfg := Config{
		Upstreams: []netip.AddrPort{up.Addr},
		Allow:     c.AllowName,
		Forbidden: func(ip netip.Addr) (netip.Prefix, bool) { return loopback, loopback.Contains(ip) },
		Record:    rec.record,
		Audit:     rec.audit,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, rec
}

func query(t testing.TB, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: 4242, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}}}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t *testing.T, b []byte) (dnsmessage.RCode, []netip.Addr, dnsmessage.Message) {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(b); err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if m.Header.ID != 4242 || !m.Header.Response {
		t.Fatalf("reply header %+v", m.Header)
	}
	var ips []netip.Addr
	for _, r := range m.Answers {
		if a, ok := r.Body.(*dnsmessage.AResource); ok {
			ips = append(ips, netip.AddrFrom4(a.A))
		}
	}
	return m.Header.RCode, ips, m
}

func TestAllowedBlockedAndFiltered(t *testing.T) {
	pub := netip.MustParseAddr("203.0.113.10")
	up := dnstest.Start(t, map[string][]netip.Addr{
		"allowed.test":    {pub},
		"blocked.test":    {pub},
		"rebind.test":     {netip.MustParseAddr("127.0.0.1")},
		"mixed.test":      {netip.MustParseAddr("127.0.0.2"), pub},
		"target.cdn.test": {pub},
	})
	up.SetCNAME("www.allowed.test", "target.cdn.test")
	s, rec := newServer(t, up, policy.Policy{Allow: []string{"allowed.test", "*.allowed.test", "rebind.test", "mixed.test", "gone.test"}}, nil)
	ctx := context.Background()

	rc, ips, m := parse(t, s.Handle(ctx, query(t, "Allowed.Test.", dnsmessage.TypeA), 512))
	if rc != dnsmessage.RCodeSuccess || !slices.Equal(ips, []netip.Addr{pub}) || len(m.Answers) != 1 {
		t.Fatalf("allowed: rcode %v ips %v answers %d (the unrelated record must be dropped)", rc, ips, len(m.Answers))
	}
	if got := rec.records["allowed.test"]; !slices.Equal(got, []netip.Addr{pub}) {
		t.Fatalf("record = %v", got)
	}
	rc, _, _ = parse(t, s.Handle(ctx, query(t, "blocked.test.", dnsmessage.TypeA), 512))
	if rc != dnsmessage.RCodeNameError {
		t.Fatalf("not allowed: rcode %v, want NXDOMAIN", rc)
	}
	rc, ips, _ = parse(t, s.Handle(ctx, query(t, "rebind.test.", dnsmessage.TypeA), 512))
	if rc != dnsmessage.RCodeSuccess || len(ips) != 0 {
		t.Fatalf("rebind: rcode %v ips %v", rc, ips)
	}
	if _, ok := rec.records["rebind.test"]; ok {
		t.Fatal("rebind answer was recorded")
	}
	_, ips, _ = parse(t, s.Handle(ctx, query(t, "mixed.test.", dnsmessage.TypeA), 512))
	if !slices.Equal(ips, []netip.Addr{pub}) {
		t.Fatalf("mixed: ips %v", ips)
	}
	// A CNAME chain: the record is kept under the name the sandbox asked for.
	_, ips, m = parse(t, s.Handle(ctx, query(t, "www.allowed.test.", dnsmessage.TypeA), 512))
	if !slices.Equal(ips, []netip.Addr{pub}) || len(m.Answers) != 2 || !slices.Equal(rec.records["www.allowed.test"], ips) {
		t.Fatalf("cname: ips %v answers %v", ips, m.Answers)
	}
	rc, _, _ = parse(t, s.Handle(ctx, query(t, "gone.test.", dnsmessage.TypeA), 512))
	if rc != dnsmessage.RCodeNameError {
		t.Fatalf("upstream NXDOMAIN: rcode %v", rc)
	}
	rc, ips, m = parse(t, s.Handle(ctx, query(t, "allowed.test.", dnsmessage.TypeAAAA), 512))
	if rc != dnsmessage.RCodeSuccess || len(m.Answers) != 0 {
		t.Fatalf("AAAA: rcode %v answers %v", rc, m.Answers)
	}

	want := map[string]struct {
		allowed bool
		rule    string
	}{
		"blocked.test": {false, "default-deny"},
		"rebind.test":  {false, "rebind:127.0.0.0/8"},
		"allowed.test": {true, "allow:allowed.test"},
	}
	for _, a := range rec.answers {
		if w, ok := want[a.Name]; ok && a.Type == "A" && (a.Allowed != w.allowed || a.Rule != w.rule) {
			t.Errorf("audit for %s: %+v, want %+v", a.Name, a, w)
		}
	}
}

func TestTruncationAndTCPFallback(t *testing.T) {
	var many []netip.Addr
	for i := range 60 {
		many = append(many, netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}))
	}
	up := dnstest.Start(t, map[string][]netip.Addr{"big.test": many})
	up.TruncateUDP.Store(true) // the server must retry upstream over TCP
	s, _ := newServer(t, up, policy.Policy{Allow: []string{"big.test"}}, nil)
	_, _, m := parse(t, s.Handle(context.Background(), query(t, "big.test.", dnsmessage.TypeA), 512))
	if !m.Header.Truncated || len(m.Answers) != 0 {
		t.Fatalf("60 records over 512-byte UDP: truncated=%v answers=%d", m.Header.Truncated, len(m.Answers))
	}
	_, ips, _ := parse(t, s.Handle(context.Background(), query(t, "big.test.", dnsmessage.TypeA), 65535))
	if len(ips) != 60 {
		t.Fatalf("over TCP: %d ips", len(ips))
	}
}

func TestGarbageAndRateLimit(t *testing.T) {
	up := dnstest.Start(t, map[string][]netip.Addr{"a.test": {netip.MustParseAddr("203.0.113.1")}})
	now := time.Unix(1000, 0)
	s, _ := newServer(t, up, policy.Policy{Allow: []string{"a.test"}}, func(c *Config) {
		c.Rate, c.Burst = 10, 5
		c.Now = func() time.Time { return now }
	})
	ctx := context.Background()
	for _, b := range [][]byte{nil, {1, 2, 3}, make([]byte, 12)} {
		if r := s.Handle(ctx, b, 512); r != nil && len(r) > 512 {
			t.Fatalf("garbage got a huge reply")
		}
	}
	s2, _ := newServer(t, up, policy.Policy{Allow: []string{"a.test"}}, func(c *Config) {
		c.Rate, c.Burst = 10, 5
		c.Now = func() time.Time { return now }
	})
	answered := 0
	for range 50 {
		if s2.Handle(ctx, query(t, "a.test.", dnsmessage.TypeA), 512) != nil {
			answered++
		}
	}
	if answered != 5 || s2.Dropped() != 45 {
		t.Fatalf("burst 5: answered %d dropped %d", answered, s2.Dropped())
	}
	now = now.Add(time.Second) // 10 more tokens, capped at the burst
	answered = 0
	for range 50 {
		if s2.Handle(ctx, query(t, "a.test.", dnsmessage.TypeA), 512) != nil {
			answered++
		}
	}
	if answered != 5 {
		t.Fatalf("after refill: answered %d", answered)
	}
}

func TestUpstreamDown(t *testing.T) {
	up := dnstest.Start(t, nil)
	dead := netip.MustParseAddrPort("127.0.0.1:1") // nothing listens on port 1
	s, rec := newServer(t, up, policy.Policy{Allow: []string{"a.test"}}, func(c *Config) {
		c.Upstreams = []netip.AddrPort{dead}
		c.Timeout = 200 * time.Millisecond
	})
	rc, _, _ := parse(t, s.Handle(context.Background(), query(t, "a.test.", dnsmessage.TypeA), 512))
	if rc != dnsmessage.RCodeServerFailure || rec.answers[0].Rule != "upstream-error" {
		t.Fatalf("dead upstream: rcode %v audit %+v", rc, rec.answers)
	}
}

func TestServeUDPAndTCP(t *testing.T) {
	pub := netip.MustParseAddr("203.0.113.10")
	up := dnstest.Start(t, map[string][]netip.Addr{"a.test": {pub}})
	s, _ := newServer(t, up, policy.Policy{Allow: []string{"a.test"}}, nil)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.ServeUDP(ctx, pc) })
	wg.Go(func() { s.ServeTCP(ctx, ln) })

	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		if network == "tcp" || network == "tcp4" {
			return d.DialContext(ctx, network, ln.Addr().String())
		}
		return d.DialContext(ctx, network, pc.LocalAddr().String())
	}}
	ips, err := r.LookupNetIP(ctx, "ip4", "a.test")
	if err != nil || len(ips) != 1 || ips[0] != pub {
		t.Fatalf("lookup over UDP: %v %v", ips, err)
	}
	if _, err := r.LookupNetIP(ctx, "ip4", "other.test"); err == nil {
		t.Fatal("lookup of a name not allowed succeeded")
	}
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := writeTCPMsg(c, query(t, "a.test.", dnsmessage.TypeA)); err != nil {
		t.Fatal(err)
	}
	b, err := readTCPMsg(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ips, _ := parse(t, b); len(ips) != 1 {
		t.Fatalf("over TCP: %v", ips)
	}
	c.Close()
	cancel()
	pc.Close()
	wg.Wait()
}

// FuzzHandle feeds hostile messages to the server. The policy allows only
// names the fuzzer is unlikely to hit, so replies come from the server
// itself; each must be a well-formed response no larger than the limit.
func FuzzHandle(f *testing.F) {
	f.Add(query(f, "a.test.", dnsmessage.TypeA))
	f.Add(query(f, "x.test.", dnsmessage.TypeAAAA))
	f.Add([]byte{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0})
	s, err := New(Config{
		Upstreams: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")},
		Allow:     func(string) policy.Decision { return policy.Decision{} },
		Forbidden: func(netip.Addr) (netip.Prefix, bool) { return netip.Prefix{}, false },
		Rate:      1e9, Burst: 1 << 30,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := s.Handle(context.Background(), b, 512)
		if r == nil {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(r); err != nil || !m.Header.Response || len(r) > 512 {
			t.Fatalf("bad reply (%d bytes): %v", len(r), err)
		}
	})
}
