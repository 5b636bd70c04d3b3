// Package dns is the sandbox-facing DNS server of the network gateway. It
// answers only names the policy allows (NXDOMAIN for the rest), resolves
// them through upstream resolvers on the host, drops A records that point
// into forbidden ranges (the rebinding guard), and reports every name→address
// answer so the gateway can later check that a flow goes to an address the
// sandbox resolved for an allowed name.
//
// The server is IPv4-only like the gateway: AAAA, HTTPS and SVCB queries get
// an empty answer (NODATA), so clients fall back to A at once; answers of
// other types keep only CNAME, TXT, MX and SRV records, and additional
// records are never passed on (they could carry addresses that bypass the
// filter). Messages are parsed and built with golang.org/x/net/dns/dnsmessage.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Answer describes one query and what the server did with it, for the audit
// log.
type Answer struct {
	Name    string       // normalized query name ("" if invalid)
	Type    string       // query type, e.g. "A"
	RCode   string       // response code sent, e.g. "NXDOMAIN"
	IPs     []netip.Addr // A records passed to the sandbox
	Allowed bool
	Rule    string // the policy rule, or "rebind:PREFIX", "upstream-error", ...
}

// Config configures a Server. Functions are called concurrently from many
// goroutines and must not block.
type Config struct {
	// Upstreams are the resolvers queried, in order, over UDP (TCP when
	// truncated). Required.
	Upstreams []netip.AddrPort
	// Allow decides a name under the current policy. Required.
	Allow func(name string) policy.Decision
	// Forbidden reports whether an address may not be handed to the
	// sandbox, and the range that forbids it. Required.
	Forbidden func(ip netip.Addr) (netip.Prefix, bool)
	// Record is told every name and the addresses the sandbox received for
	// it, with their TTL. Optional.
	Record func(name string, ips []netip.Addr, ttl time.Duration)
	// Audit is told about every query answered. Optional.
	Audit func(Answer)
	// Logger receives rate-limit warnings. Nil discards.
	Logger *slog.Logger
	// Timeout bounds one upstream exchange. Zero means 3s.
	Timeout time.Duration
	// MaxInFlight bounds the queries being resolved at once; further
	// queries are dropped. Zero means 64.
	MaxInFlight int
	// Rate and Burst bound queries per second (a token bucket); queries
	// over the limit are dropped. Zero means 100 per second, burst 200.
	Rate  float64
	Burst int
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Server answers DNS queries from one sandbox. It is safe for concurrent use;
// it owns no goroutines except those its Serve methods run until their
// context is done or their listener closes.
type Server struct {
	cfg   Config
	log   *slog.Logger
	slots chan struct{} // one token per in-flight query

	mu         sync.Mutex // guards the fields below
	tokens     float64
	last       time.Time
	dropped    uint64
	lastWarned time.Time
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if len(cfg.Upstreams) == 0 || cfg.Allow == nil || cfg.Forbidden == nil {
		return nil, fmt.Errorf("dns: upstreams, Allow and Forbidden are required: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	if cfg.Rate <= 0 {
		cfg.Rate, cfg.Burst = 100, 200
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, slots: make(chan struct{}, cfg.MaxInFlight), tokens: float64(cfg.Burst), last: cfg.Now()}, nil
}

// Dropped returns how many queries were dropped by the rate limit or the
// in-flight bound.
func (s *Server) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// admit takes one token from the bucket and one in-flight slot; release
// gives the slot back. ok is false when the query must be dropped.
func (s *Server) admit() (release func(), ok bool) {
	s.mu.Lock()
	now := s.cfg.Now()
	s.tokens = min(float64(s.cfg.Burst), s.tokens+now.Sub(s.last).Seconds()*s.cfg.Rate)
	s.last = now
	if s.tokens >= 1 {
		s.tokens--
		s.mu.Unlock()
		select {
		case s.slots <- struct{}{}:
			return func() { <-s.slots }, true
		default:
		}
		s.mu.Lock()
	}
	s.dropped++
	warn := now.Sub(s.lastWarned) > 10*time.Second
	if warn {
		s.lastWarned = now
	}
	dropped := s.dropped
	s.mu.Unlock()
	if warn {
		s.log.Warn("dns: dropping queries over the limit", "dropped_total", dropped)
	}
	return nil, false
}

// Handle answers one query message. maxSize is the largest reply the
// transport takes (512 for plain UDP; the server honours a larger EDNS size
// up to 1232 on UDP; 65535 on TCP). It returns nil when the query must be
// dropped: unparseable, a response, or over the limits.
func (s *Server) Handle(ctx context.Context, query []byte, maxSize int) []byte {
	release, ok := s.admit()
	if !ok {
		return nil
	}
	defer release()
	return s.handleAdmitted(ctx, query, maxSize)
}

func (s *Server) handleAdmitted(ctx context.Context, query []byte, maxSize int) []byte {
	var q dnsmessage.Message
	if err := q.Unpack(query); err != nil || q.Header.Response {
		return nil
	}
	if maxSize <= 512 {
		maxSize = 512
		for _, r := range q.Additionals {
			if r.Header.Type == dnsmessage.TypeOPT {
				maxSize = min(max(int(r.Header.Class), 512), 1232)
			}
		}
	}
	resp, ans := s.answer(ctx, &q)
	if s.cfg.Audit != nil && ans.Type != "" {
		s.cfg.Audit(ans)
	}
	b, err := resp.Pack()
	if err == nil && len(b) > maxSize {
		resp.Header.Truncated = true
		resp.Answers = nil
		b, err = resp.Pack()
	}
	if err != nil {
		return nil
	}
	return b
}

// answer builds the reply to q. ans.Type is empty when the query was not
// worth auditing (malformed).
func (s *Server) answer(ctx context.Context, q *dnsmessage.Message) (*dnsmessage.Message, Answer) {
	resp := &dnsmessage.Message{Header: dnsmessage.Header{
		ID: q.Header.ID, Response: true, OpCode: q.Header.OpCode,
		RecursionDesired: q.Header.RecursionDesired, RecursionAvailable: true,
	}, Questions: q.Questions}
	if q.Header.OpCode != 0 {
		resp.Header.RCode = dnsmessage.RCodeNotImplemented
		return resp, Answer{}
	}
	if len(q.Questions) != 1 {
		resp.Header.RCode = dnsmessage.RCodeFormatError
		return resp, Answer{}
	}
	qn := q.Questions[0]
	ans := Answer{Type: strings.TrimPrefix(qn.Type.String(), "Type")}
	reply := func(rc dnsmessage.RCode) (*dnsmessage.Message, Answer) {
		resp.Header.RCode = rc
		ans.RCode = strings.TrimPrefix(rc.String(), "RCode")
		return resp, ans
	}
	name, valid := policy.NormalizeName(qn.Name.String())
	if !valid || qn.Class != dnsmessage.ClassINET {
		ans.Rule = "invalid-query"
		return reply(dnsmessage.RCodeRefused)
	}
	ans.Name = name
	d := s.cfg.Allow(name)
	ans.Allowed, ans.Rule = d.Allowed, d.Rule
	if !d.Allowed {
		return reply(dnsmessage.RCodeNameError)
	}
	switch qn.Type {
	case dnsmessage.TypeAAAA, dnsmessage.TypeHTTPS, dnsmessage.TypeSVCB, dnsmessage.TypeALL:
		return reply(dnsmessage.RCodeSuccess) // IPv4 only: no data
	}
	up, err := s.exchange(ctx, qn)
	if err != nil {
		s.log.Debug("dns: upstream failed", "name", name, "err", err)
		ans.Rule = "upstream-error"
		return reply(dnsmessage.RCodeServerFailure)
	}
	switch up.Header.RCode {
	case dnsmessage.RCodeSuccess, dnsmessage.RCodeNameError:
	default:
		return reply(dnsmessage.RCodeServerFailure)
	}
	resp.Answers, ans.IPs = s.filter(qn, up.Answers, &ans)
	if len(ans.IPs) == 0 && strings.HasPrefix(ans.Rule, "rebind:") {
		ans.Allowed = false
	}
	if len(ans.IPs) > 0 && s.cfg.Record != nil {
		s.cfg.Record(name, ans.IPs, time.Duration(minTTL(resp.Answers))*time.Second)
	}
	return reply(up.Header.RCode)
}

// filter keeps the answers on the CNAME chain from the question's name
// whose types the server passes on, dropping A records in forbidden ranges.
func (s *Server) filter(qn dnsmessage.Question, in []dnsmessage.Resource, ans *Answer) ([]dnsmessage.Resource, []netip.Addr) {
	chain := map[string]bool{strings.ToLower(qn.Name.String()): true}
	var out []dnsmessage.Resource
	var ips []netip.Addr
	for _, r := range in {
		if r.Header.Class != dnsmessage.ClassINET || !chain[strings.ToLower(r.Header.Name.String())] {
			continue
		}
		switch body := r.Body.(type) {
		case *dnsmessage.CNAMEResource:
			chain[strings.ToLower(body.CNAME.String())] = true
			out = append(out, r)
		case *dnsmessage.AResource:
			if qn.Type != dnsmessage.TypeA {
				continue
			}
			ip := netip.AddrFrom4(body.A)
			if p, bad := s.cfg.Forbidden(ip); bad {
				ans.Rule = "rebind:" + p.String()
				continue
			}
			ips = append(ips, ip)
			out = append(out, r)
		case *dnsmessage.TXTResource, *dnsmessage.MXResource, *dnsmessage.SRVResource:
			if r.Header.Type == qn.Type {
				out = append(out, r)
			}
		}
	}
	return out, ips
}

func minTTL(rs []dnsmessage.Resource) uint32 {
	ttl := uint32(0)
	for i, r := range rs {
		if i == 0 || r.Header.TTL < ttl {
			ttl = r.Header.TTL
		}
	}
	return ttl
}

var errMismatch = errors.New("dns: upstream reply does not match the query")
