package secrets

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// envNameRE is what a user-given secret name looks like: it becomes the
// name of an environment variable in the sandbox.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// headerRE is an HTTP header field name (RFC 9110 token).
var headerRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")

// ValidName checks a name a user gives a secret: it must be usable as an
// environment variable name (letters, digits and '_', not starting with a
// digit, at most 128 bytes).
func ValidName(name string) error {
	if !envNameRE.MatchString(name) {
		return fmt.Errorf("%w: invalid secret name %q: use letters, digits and '_', not starting with a digit (it becomes an environment variable)",
			errdefs.ErrInvalidArgument, name)
	}
	return nil
}

// AnthropicAPIHost is the host whose binding defaults to the x-api-key
// header; every other host defaults to Authorization: Bearer.
const AnthropicAPIHost = "api.anthropic.com"

// Binding is a sandbox's use of a secret: the gateway adds the secret to
// every HTTPS request the sandbox makes to Host, in Header, and the
// sandbox's environment variable Name holds only Placeholder(Name).
type Binding struct {
	// Name is the secret's name in the vault and the variable's name in
	// the sandbox.
	Name string `json:"name"`
	// Host is the exact host name the secret is sent to.
	Host string `json:"host"`
	// Header is the header the gateway sets; "" means the default
	// (DefaultHeader).
	Header string `json:"header,omitempty"`
	// Value is set only for upstream's inline form, KEY=value:host. It is
	// never marshalled: the daemon moves it into the vault at once.
	Value string `json:"-"`
}

// ParseBinding parses a --secret flag or an entry of a create request's
// secrets: "KEY:host", "KEY:host:header", or upstream's "KEY=value:host"
// (the value may contain ':'; the host is what follows the last one), or
// "KEY=value:host:header" (a last field without a dot after a host name).
func ParseBinding(s string) (Binding, error) {
	bad := func(why string) (Binding, error) {
		// The entry may hold a value: never echo what follows a '='.
		return Binding{}, fmt.Errorf("%w: invalid secret binding: %s (want KEY:HOST[:HEADER] or KEY=VALUE:HOST)", errdefs.ErrInvalidArgument, why)
	}
	var b Binding
	if k, rest, ok := strings.Cut(s, "="); ok && !strings.Contains(k, ":") {
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return bad("an inline value needs :HOST after it")
		}
		b = Binding{Name: k, Value: rest[:i], Host: rest[i+1:]}
		// KEY=value:host:header: a last field with no dot that is a
		// header name, after a field that is a host name.
		if j := strings.LastIndexByte(b.Value, ':'); j >= 0 && !strings.Contains(b.Host, ".") && headerRE.MatchString(b.Host) {
			if h, ok := policy.NormalizeName(b.Value[j+1:]); ok && strings.Contains(h, ".") {
				b.Header, b.Host, b.Value = b.Host, b.Value[j+1:], b.Value[:j]
			}
		}
		if b.Value == "" || len(b.Value) > MaxValueBytes || strings.ContainsAny(b.Value, "\r\n\x00") {
			return bad(fmt.Sprintf("the inline value of %s must be 1 to %d bytes on one line", k, MaxValueBytes))
		}
	} else {
		parts := strings.Split(s, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return bad(fmt.Sprintf("%d fields separated by ':'", len(parts)))
		}
		b = Binding{Name: parts[0], Host: parts[1]}
		if len(parts) == 3 {
			if !headerRE.MatchString(parts[2]) {
				return bad("the third field is not a header name")
			}
			b.Header = parts[2]
		}
	}
	if err := ValidName(b.Name); err != nil {
		return bad(fmt.Sprintf("name %q: use letters, digits and '_'", truncate(b.Name, 80)))
	}
	host, ok := policy.NormalizeName(b.Host)
	if !ok || !strings.Contains(host, ".") {
		return bad(fmt.Sprintf("the host of %s is not a host name", truncate(b.Name, 80)))
	}
	b.Host = host
	return b, nil
}

// String is the binding without its value: "KEY:host:header".
func (b Binding) String() string { return b.Name + ":" + b.Host + ":" + b.HeaderName() }

// HeaderName is the header the secret goes in: Header, else x-api-key for
// Anthropic's API, else Authorization.
func (b Binding) HeaderName() string {
	switch {
	case b.Header != "":
		return b.Header
	case b.Host == AnthropicAPIHost:
		return "x-api-key"
	}
	return "Authorization"
}

// HeaderValue is the complete header value for secret: "Bearer <secret>"
// for Authorization, the bare secret for any other header.
func (b Binding) HeaderValue(secret string) string {
	if strings.EqualFold(b.HeaderName(), "Authorization") {
		return "Bearer " + secret
	}
	return secret
}

// Placeholder is what the sandbox's variable name holds instead of the
// secret. It is not secret; the gateway replaces whatever the sandbox sends
// in the bound header, so a client may send the placeholder as its key.
func Placeholder(name string) string { return "agentkernel-placeholder-" + name }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
