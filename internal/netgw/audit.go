package netgw

import (
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Event is one audit record: a DNS answer, a flow decision, or a flow's end.
// It marshals to one JSON line.
type Event struct {
	Time    time.Time `json:"time"`
	Sandbox string    `json:"sandbox"`
	// Kind is "dns" (an answer), "connect" (a flow decision), "close" (an
	// allowed flow ended; carries bytes), "request" (an intercepted HTTP
	// request), "inbound" (a connection to a published port) or
	// "suppressed" (denials dropped from the log by its rate limit; Count
	// says how many).
	Kind  string `json:"kind"`
	Proto string `json:"proto,omitempty"` // "tcp" or "udp"
	// Name is the query name for dns, and for flows the name the
	// destination was matched to (the SNI or Host when inspected).
	Name string     `json:"name,omitempty"`
	IP   netip.Addr `json:"ip,omitzero"`
	Port uint16     `json:"port,omitempty"`
	// IPs, QType and RCode describe a DNS answer.
	IPs   []netip.Addr `json:"ips,omitempty"`
	QType string       `json:"qtype,omitempty"`
	RCode string       `json:"rcode,omitempty"`
	// Allowed and Rule say what was decided and by which rule, e.g.
	// "allow:example.com", "cidr:203.0.113.0/24", "forbidden:10.0.0.0/8",
	// "unresolved", "sni-mismatch", "malformed-clienthello".
	Allowed bool   `json:"allowed"`
	Rule    string `json:"rule"`
	// BytesUp (sandbox to world) and BytesDown count payload bytes of a
	// closed flow; Duration is its lifetime.
	BytesUp   int64         `json:"bytes_up,omitempty"`
	BytesDown int64         `json:"bytes_down,omitempty"`
	Duration  time.Duration `json:"duration_ns,omitempty"`
	// Intercepted marks a connection whose TLS the gateway terminated to
	// inject a secret; each of its requests is a Kind "request" event with
	// Method, Status and SecretInjected (header values are never logged).
	Intercepted    bool   `json:"intercepted,omitempty"`
	Method         string `json:"method,omitempty"`
	Status         int    `json:"status,omitempty"`
	SecretInjected bool   `json:"secret_injected,omitempty"`
	// Error says why an allowed flow failed (the upstream dial, say).
	Error string `json:"error,omitempty"`
	// Count is the number of suppressed events (Kind "suppressed").
	Count int64 `json:"count,omitempty"`
	// TraceID and SpanID (hex) name the flow's span when Config.Trace
	// traced it: the trace of the exec that made the connection.
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
}

// denyLimiter bounds the rate of denial events, so a sandbox hammering
// forbidden addresses cannot flood the audit log. Allowed flows and DNS
// answers are not limited (DNS has its own query limit). Tokens refill at
// rate per second up to burst; denials without a token are counted and
// reported in one "suppressed" event once tokens return.
type denyLimiter struct {
	rate, burst float64

	mu         sync.Mutex // guards the fields below
	tokens     float64
	last       time.Time
	suppressed int64
}

// take reports whether a denial may be logged now, and how many earlier
// denials were suppressed and must be reported first.
func (l *denyLimiter) take(now time.Time) (ok bool, suppressed int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = l.burst
	} else {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	s := l.suppressed
	l.suppressed = 0
	return true, s
}

// hostFixedKinds are the rule kinds whose whole text is fixed by the host
// (its forbidden ranges, its flow limit, the permissive profile), so a
// sandbox cannot make up new values of them.
var hostFixedKinds = map[string]bool{"forbidden": true, "rebind": true, "limit": true, "profile": true}

// MetricRule is the rule of an event as a metric label: the whole rule
// when its value is fixed by the host ("forbidden:10.0.0.0/8",
// "rebind:10.0.0.0/8", "limit:flows", "profile:permissive") or has no
// ':' (the gateway's own constants, "default-deny", "sni-mismatch"), and
// otherwise its kind, the text before the first ':' ("allow:example.com"
// is "allow", "spoofed-source:1.2.3.4" is "spoofed-source"), so that
// neither a sandbox nor a policy can blow up a metric's label set.
func MetricRule(rule string) string {
	kind, _, found := strings.Cut(rule, ":")
	if !found || hostFixedKinds[kind] {
		return rule
	}
	return kind
}
