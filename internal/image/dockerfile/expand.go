package dockerfile

import (
	"fmt"
	"strings"
)

// Expand replaces $NAME, ${NAME}, ${NAME:-word} and ${NAME:+word} in s
// with values from lookup, as Dockerfile instructions other than RUN, CMD
// and ENTRYPOINT do. Text in single quotes and an escaped \$ are left
// alone (Words removes the quotes and escapes later). An unknown name
// expands to "".
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quote != '\'' && i+1 < len(s):
			b.WriteByte(c)
			b.WriteByte(s[i+1])
			i++
		case c == '\'' && quote == 0:
			quote = '\''
			b.WriteByte(c)
		case c == '\'' && quote == '\'':
			quote = 0
			b.WriteByte(c)
		case c == '"' && quote == 0:
			quote = '"'
			b.WriteByte(c)
		case c == '"' && quote == '"':
			quote = 0
			b.WriteByte(c)
		case c == '$' && quote != '\'' && i+1 < len(s):
			n, err := expandVar(&b, s[i+1:], lookup)
			if err != nil {
				return "", err
			}
			i += n
		default:
			b.WriteByte(c)
		}
		if b.Len() > maxLine {
			return "", fmt.Errorf("expanded text longer than %d bytes", maxLine)
		}
	}
	return b.String(), nil
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// expandVar expands the reference after a '$' at the start of s and
// returns how many bytes of s it used.
func expandVar(b *strings.Builder, s string, lookup func(string) (string, bool)) (int, error) {
	if s[0] != '{' {
		n := 0
		for n < len(s) && isNameByte(s[n], n == 0) {
			n++
		}
		if n == 0 {
			b.WriteByte('$')
			return 0, nil
		}
		v, _ := lookup(s[:n])
		b.WriteString(v)
		return n, nil
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return 0, fmt.Errorf("unterminated ${ in %.60q", s)
	}
	body := s[1:end]
	name, op, word := body, "", ""
	for i := 0; i < len(body); i++ {
		if !isNameByte(body[i], i == 0) {
			name, op, word = body[:i], body[i:min(i+2, len(body))], body[min(i+2, len(body)):]
			break
		}
	}
	if name == "" {
		return 0, fmt.Errorf("bad substitution ${%.40s}", body)
	}
	v, ok := lookup(name)
	switch op {
	case "":
		b.WriteString(v)
	case ":-":
		if !ok || v == "" {
			v = word
		}
		b.WriteString(v)
	case ":+":
		if ok && v != "" {
			b.WriteString(word)
		}
	default:
		return 0, fmt.Errorf("unsupported substitution ${%.40s}", body)
	}
	return end + 1, nil
}
