package secrets

import (
	"errors"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestParseBinding(t *testing.T) {
	for _, c := range []struct {
		in                string
		want              Binding
		header, headerVal string
	}{
		{"OPENAI_API_KEY:api.openai.com", Binding{Name: "OPENAI_API_KEY", Host: "api.openai.com"}, "Authorization", "Bearer s"},
		{"ANTHROPIC_API_KEY:api.anthropic.com", Binding{Name: "ANTHROPIC_API_KEY", Host: "api.anthropic.com"}, "x-api-key", "s"},
		{"K:API.Example.COM.:X-Token", Binding{Name: "K", Host: "api.example.com", Header: "X-Token"}, "X-Token", "s"},
		{"K:example.com:authorization", Binding{Name: "K", Host: "example.com", Header: "authorization"}, "authorization", "Bearer s"},
		{"GH=ghp_a:b=c:github.com", Binding{Name: "GH", Host: "github.com", Value: "ghp_a:b=c"}, "Authorization", "Bearer s"},
		{"GEMINI_API_KEY=AIza:x:generativelanguage.googleapis.com:x-goog-api-key",
			Binding{Name: "GEMINI_API_KEY", Host: "generativelanguage.googleapis.com", Header: "x-goog-api-key", Value: "AIza:x"}, "x-goog-api-key", "s"},
	} {
		got, err := ParseBinding(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseBinding(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		if got.HeaderName() != c.header || got.HeaderValue("s") != c.headerVal {
			t.Errorf("%q: header %q value %q", c.in, got.HeaderName(), got.HeaderValue("s"))
		}
		if strings.Contains(got.String(), "ghp_") {
			t.Errorf("String shows the value: %s", got)
		}
	}
	for _, in := range []string{
		"", "K", "K:", ":host.com", "1K:host.com", "K:host", "K:host.com:bad header", "K:a.com:b:c",
		"K=:host.com", "K=value", "K=val\nue:host.com", "K:ho st.com", "K=v:*.host.com",
	} {
		if _, err := ParseBinding(in); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("ParseBinding(%q): %v", in, err)
		}
	}
	// An error never repeats an inline value.
	_, err := ParseBinding("K=sk-secret-value:not a host")
	if err == nil || strings.Contains(err.Error(), "sk-secret") {
		t.Errorf("error %v", err)
	}
}

func FuzzParseBinding(f *testing.F) {
	for _, s := range []string{"K:a.com", "K=v:a.com", "K:a.com:h", "K=a:b:c.d", "=:", "::::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBinding(s)
		if err != nil {
			if b != (Binding{}) {
				t.Fatalf("error with a binding: %+v", b)
			}
			if i := strings.IndexByte(s, '='); i > 0 && len(s) > i+8 && strings.Contains(err.Error(), s[i+1:]) {
				t.Fatalf("error repeats the input's value: %v", err)
			}
			return
		}
		if ValidName(b.Name) != nil || b.Host == "" || strings.ContainsAny(b.Host, ": ") || strings.ContainsAny(b.HeaderName(), " :\r\n") {
			t.Fatalf("accepted %+v", b)
		}
		if strings.ContainsAny(b.HeaderValue("x")+b.Value, "\r\n") {
			t.Fatalf("line break in %+v", b)
		}
	})
}
