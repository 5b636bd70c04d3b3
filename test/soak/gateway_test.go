package soak

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// TestGatewaySequentialGETs is the regression test of a gateway stall the
// load suite found: one sandbox, one exec, a shell loop of sequential HTTP
// GETs to an allowed address (no DNS involved); every GET must answer. The
// sandbox's kernel reuses source ports whose gateway side was still in
// TIME_WAIT (60 s), and such a SYN went unanswered: about 1 GET in 600 hung
// for 30 s. 3000 GETs (about 12 s) by default, AGENTKERNEL_SOAK_GATEWAY_GETS
// to change it. See docs/RELIABILITY.md.
func TestGatewaySequentialGETs(t *testing.T) {
	if skipReason != "" {
		t.Skip("soak: " + skipReason)
	}
	n := 3000
	if s := os.Getenv("AGENTKERNEL_SOAK_GATEWAY_GETS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			t.Fatalf("AGENTKERNEL_SOAK_GATEWAY_GETS=%q: want a positive number", s)
		}
	}
	h, err := akhome.New("aksoakgw")
	if err != nil {
		t.Fatal(err)
	}
	defer h.RemoveHome()
	defer func() {
		for _, p := range h.Teardown() {
			t.Errorf("leftover: %s", p)
		}
	}()
	w := newWorld(t, h)
	c, err := h.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: "gw",
		Network: &api.NetworkPolicy{AllowCIDRs: []string{worldIP + "/32:80"}}, Dirs: []string{helperDir + ":/soak:ro"}}); err != nil {
		t.Fatal(err)
	}
	// Each failure prints its number, how long it took and the error.
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do i=$((i+1)); s=$(date +%%s%%N)
out=$(/soak/helper get http://%s/x$i 2>&1)
[ "$out" = "soak x$i" ] || echo "GET $i failed after $(( ($(date +%%s%%N)-s)/1000000 )) ms: $out"; done`, n, worldIP)
	r, err := c.Exec(ctx, "gw", api.ExecRequest{Command: []string{"sh", "-c", script}, Timeout: "60m"})
	if err != nil || r.ExitCode != 0 {
		t.Fatalf("the loop: %v %+v", err, r)
	}
	info, _ := c.SandboxNetwork(ctx, "gw")
	if fails := strings.Count(r.Stdout, "\n"); fails > 0 {
		t.Errorf("%d of %d sequential GETs failed (gateway stats %+v, the world answered %d):\n%s", fails, n, info.Stats, w.served.Load(), r.Stdout)
	}
}
