package sandbox

import (
	"reflect"
	"testing"

	"github.com/agentkernel/agentkernel/internal/supervisor"
)

func TestAddCounters(t *testing.T) {
	a := supervisor.GatewayCounters{Connections: map[string]int64{"connect": 2}, DNSQueries: 3, BytesUp: 10,
		Denials: []supervisor.DenialCount{{Kind: "connect", Rule: "default-deny", Count: 1}}}
	b := supervisor.GatewayCounters{Connections: map[string]int64{"connect": 1, "inbound": 4}, BytesDown: 7,
		Denials: []supervisor.DenialCount{{Kind: "dns", Rule: "allow", Count: 2}, {Kind: "connect", Rule: "default-deny", Count: 5}}}
	got := addCounters(a, b)
	want := supervisor.GatewayCounters{Connections: map[string]int64{"connect": 3, "inbound": 4}, DNSQueries: 3, BytesUp: 10, BytesDown: 7,
		Denials: []supervisor.DenialCount{{Kind: "connect", Rule: "default-deny", Count: 6}, {Kind: "dns", Rule: "allow", Count: 2}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("addCounters:\n got %+v\nwant %+v", got, want)
	}
	got.Connections["connect"] = 100
	if a.Connections["connect"] != 2 || b.Connections["connect"] != 1 {
		t.Error("addCounters shares its maps with its arguments")
	}
}
