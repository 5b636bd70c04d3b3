package supervisor

import (
	"testing"

	"github.com/agentkernel/agentkernel/internal/netgw"
)

func TestGatewayCounters(t *testing.T) {
	var c gatewayCounters
	c.observe(netgw.Event{Kind: "dns", Allowed: true, Rule: "allow:example.com"})
	c.observe(netgw.Event{Kind: "connect", Allowed: true, Rule: "allow:example.com"})
	c.observe(netgw.Event{Kind: "close", Allowed: true, BytesUp: 10, BytesDown: 20})
	c.observe(netgw.Event{Kind: "connect", Rule: "default-deny"})
	c.observe(netgw.Event{Kind: "connect", Rule: "spoofed-source:1.2.3.4"})
	c.observe(netgw.Event{Kind: "connect", Rule: "spoofed-source:5.6.7.8"})
	got := c.snapshot()
	if got.DNSQueries != 1 || got.Connections["connect"] != 1 || got.BytesUp != 10 || got.BytesDown != 20 {
		t.Fatalf("counters = %+v", got)
	}
	want := []DenialCount{{"connect", "default-deny", 1}, {"connect", "spoofed-source", 2}}
	if len(got.Denials) != len(want) || got.Denials[0] != want[0] || got.Denials[1] != want[1] {
		t.Fatalf("denials = %+v, want %+v", got.Denials, want)
	}
}
