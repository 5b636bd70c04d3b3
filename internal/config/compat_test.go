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
