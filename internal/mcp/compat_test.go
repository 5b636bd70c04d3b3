package mcp

import (
	"context"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/compatdoc"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// TestCompatTools checks that the server lists every tool docs/COMPAT.md
// says upstream's MCP clients may call.
func TestCompatTools(t *testing.T) {
	rows, err := compatdoc.Accepted(compatdoc.KindMCP)
	if err != nil {
		t.Fatal(err)
	}
	// The SDK client, as agentkernel mcp-server and serve give it: the
	// optional tools are listed only for a client that has their methods.
	// Listing calls nothing.
	c, err := client.New(client.WithBaseURL("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	cs, _ := connect(t, c, Policy{})
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, tool := range res.Tools {
		have[tool.Name] = true
	}
	for _, r := range rows {
		if !have[r.Key] {
			t.Errorf("%s: the server has no such tool", r)
		}
	}
}

// sandbox_run takes upstream's cwd, env, timeout_ms and fast.
func TestRunUpstreamArgs(t *testing.T) {
	f := newFake()
	cs, _ := connect(t, f, Policy{})
	call(t, cs, "sandbox_run", map[string]any{"command": []string{"pwd"}, "cwd": "/src",
		"env": map[string]string{"B": "2", "A": "1"}, "timeout_ms": 1500, "fast": false}, nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[0]
	if r.Workdir != "/src" || strings.Join(r.Env, " ") != "A=1 B=2" || r.Timeout != "1.5s" || r.Fast == nil || *r.Fast {
		t.Fatalf("run request %+v", r)
	}
}
