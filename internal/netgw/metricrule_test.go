package netgw

import "testing"

func TestMetricRule(t *testing.T) {
	for in, want := range map[string]string{
		"allow:example.com":                  "allow",
		"preset:pypi:files.pythonhosted.org": "preset",
		"cidr:203.0.113.0/24":                "cidr",
		"block:evil.example":                 "block",
		"name:foo":                           "name",
		"secret:api.example.com":             "secret",
		"spoofed-source:1.2.3.4":             "spoofed-source",
		"forbidden:10.0.0.0/8":               "forbidden:10.0.0.0/8",
		"rebind:192.168.0.0/16":              "rebind:192.168.0.0/16",
		"limit:flows":                        "limit:flows",
		"profile:permissive":                 "profile:permissive",
		"default-deny":                       "default-deny",
		"sni-mismatch":                       "sni-mismatch",
		"":                                   "",
	} {
		if got := MetricRule(in); got != want {
			t.Errorf("MetricRule(%q) = %q, want %q", in, got, want)
		}
	}
}
