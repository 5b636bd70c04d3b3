package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/api"
)

// TestListLabelFilter: GET /sandboxes?label=KEY=VALUE&label=KEY lists the
// sandboxes that have every label asked for.
func TestListLabelFilter(t *testing.T) {
	e := newEnv(t, HandlerOptions{})
	for _, c := range []string{
		`{"name":"a","labels":{"team":"x","tier":"dev"}}`,
		`{"name":"b","labels":{"team":"y"}}`,
		`{"name":"c"}`,
	} {
		if resp, body := e.do(t, "POST", "/sandboxes", []byte(c), map[string]string{"Content-Type": "application/json"}); resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
			t.Fatalf("create %s: %d %s", c, resp.StatusCode, body)
		}
	}
	names := func(q string) []string {
		resp, body := e.do(t, "GET", "/sandboxes"+q, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /sandboxes%s: %d %s", q, resp.StatusCode, body)
		}
		var list []api.SandboxInfo
		json.Unmarshal(body, &api.Envelope{Data: &list})
		var out []string
		for _, sb := range list {
			out = append(out, sb.Name)
		}
		slices.Sort(out)
		return out
	}
	for q, want := range map[string][]string{
		"":                              {"a", "b", "c"},
		"?label=team":                   {"a", "b"},
		"?label=team=x":                 {"a"},
		"?label=team=x&label=tier=dev":  {"a"},
		"?label=team=x&label=tier=prod": nil,
		"?label=nosuch":                 nil,
	} {
		if got := names(q); !slices.Equal(got, want) {
			t.Errorf("GET /sandboxes%s: %v, want %v", q, got, want)
		}
	}
	if resp, _ := e.do(t, "GET", "/sandboxes?label==x", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("label filter without a key: %d, want 400", resp.StatusCode)
	}
}
