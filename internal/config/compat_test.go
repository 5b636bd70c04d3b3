package config

import (
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/compatdoc"
)

// compatTOML turns a config row's key ("[resources] vcpus = 2", "[ports]",
// "[[files]]") into a file holding just that.
func compatTOML(key string) string {
	end := strings.Index(key, "]")
	for end+1 < len(key) && key[end+1] == ']' {
		end++
	}
	return key[:end+1] + "\n" + strings.TrimSpace(key[end+1:]) + "\n"
}

// TestCompatConfig parses, for every config key docs/COMPAT.md says is
// accepted, a file with that key and the row's sample value.
func TestCompatConfig(t *testing.T) {
	rows, err := compatdoc.Accepted(compatdoc.KindConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if !strings.HasPrefix(r.Key, "[") {
			t.Errorf("%s: want [section] key = sample", r)
			continue
		}
		if r.Key == "[[files]]" {
			// An entry needs a real file beside the config: files_test.go.
			continue
		}
		if _, err := Parse([]byte(compatTOML(r.Key))); err != nil {
			t.Errorf("%s: %v", r, err)
		}
	}
}

// Upstream's [security.domains] becomes the gateway's policy.
func TestDomainsPolicy(t *testing.T) {
	c, err := Parse([]byte("[security]\nnetwork = true\n[security.domains]\nallow = [\"pypi.org\"]\nblock = [\"evil.com\"]\nallowlist_only = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	n := c.Request().Network
	if n == nil || n.Profile != "restrictive" || len(n.Allow) != 1 || n.Allow[0] != "pypi.org" || len(n.Block) != 1 || n.Block[0] != "evil.com" {
		t.Fatalf("policy %+v", n)
	}
	c, err = Parse([]byte("[security.domains]\nallow = [\"pypi.org\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Request().Network; n == nil || n.Profile != "" || len(n.Allow) != 1 {
		t.Fatalf("without allowlist_only the profile's list stays: %+v", n)
	}
	if c, _ := Parse([]byte("[security]\nnetwork = true\n")); c == nil || c.Request().Network != nil {
		t.Fatal("network = true changed the profile's network")
	}
}

// Upstream's [network] ports are published as --publish would.
func TestNetworkPorts(t *testing.T) {
	c, err := Parse([]byte("[network]\nports = [\"8080:80\", \"3000\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Request().Publish; len(p) != 2 || p[0] != "8080:80" || p[1] != "0:3000" {
		t.Fatalf("publish %q", p)
	}
	for _, bad := range []string{"5353:53/udp", "x", "80:0", "70000:80"} {
		if _, err := Parse([]byte("[network]\nports = [\"" + bad + "\"]\n")); err == nil || !strings.Contains(err.Error(), "network.ports") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
