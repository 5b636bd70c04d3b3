package sniff

import (
	"bytes"
	"net/netip"
	"strings"

	"github.com/agentkernel/agentkernel/internal/netgw/policy"
)

// MaxHTTPHeader bounds the bytes buffered for one HTTP request head.
const MaxHTTPHeader = 16 << 10

// HTTPHost parses the head of an HTTP/1.x request at the start of b and
// returns its Host, normalized (lowercase, no port, no trailing dot). It is
// strict where leniency would let a client and a server disagree on the
// host: CRLF line endings only, no folded headers, no space before a
// header's colon, exactly one Host header, and an absolute-form target must
// name the same host. A Host that is an IP literal is an error: the gateway
// only matches names.
func HTTPHost(b []byte) (string, error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > 0 && !isTokenPrefix(b) {
			return "", malformed("not an HTTP request")
		}
		return "", ErrIncomplete
	}
	lines := strings.Split(string(b[:end]), "\r\n")
	for _, line := range lines {
		if strings.ContainsAny(line, "\r\n") {
			return "", malformed("bare CR or LF in HTTP request head")
		}
	}
	method, rest, ok := strings.Cut(lines[0], " ")
	if !ok || method == "" || !isToken(method) {
		return "", malformed("HTTP request line")
	}
	target, proto, ok := strings.Cut(rest, " ")
	if !ok || target == "" || (proto != "HTTP/1.1" && proto != "HTTP/1.0") {
		return "", malformed("HTTP request line")
	}
	var host string
	hosts := 0
	for _, line := range lines[1:] {
		if line == "" || line[0] == ' ' || line[0] == '\t' {
			return "", malformed("folded or empty HTTP header line")
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) {
			return "", malformed("HTTP header %q", truncate(line))
		}
		if strings.EqualFold(name, "Host") {
			hosts++
			host = strings.Trim(value, " \t")
		}
	}
	if hosts != 1 {
		return "", malformed("%d Host headers", hosts)
	}
	h, err := hostOnly(host)
	if err != nil {
		return "", err
	}
	if strings.Contains(target, "://") {
		_, after, _ := strings.Cut(target, "://")
		authority, _, _ := strings.Cut(after, "/")
		if strings.Contains(authority, "@") {
			return "", malformed("userinfo in absolute-form target")
		}
		th, err := hostOnly(authority)
		if err != nil {
			return "", err
		}
		if th != h {
			return "", malformed("target host %q differs from Host %q", th, h)
		}
	}
	return h, nil
}

// hostOnly strips an optional :port from a Host value and normalizes it.
func hostOnly(v string) (string, error) {
	h := v
	if i := strings.LastIndexByte(v, ':'); i >= 0 {
		h = v[:i]
		port := v[i+1:]
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return "", malformed("Host port %q", truncate(port))
		}
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return "", malformed("Host %q is an address, not a name", truncate(h))
	}
	n, ok := policy.NormalizeName(h)
	if !ok {
		return "", malformed("Host %q is not a DNS name", truncate(h))
	}
	return n, nil
}

func isTokenByte(c byte) bool {
	return c > ' ' && c < 0x7f && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenByte(s[i]) {
			return false
		}
	}
	return true
}

// isTokenPrefix reports whether b could still begin a request line: a
// method token, then a space. It lets HTTPHost refuse TLS or binary
// garbage at once instead of waiting for MaxHTTPHeader bytes.
func isTokenPrefix(b []byte) bool {
	for i, c := range b {
		if c == ' ' {
			return i > 0
		}
		if !isTokenByte(c) || i >= 32 {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
