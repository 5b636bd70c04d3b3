// Package dockerfile parses the Dockerfile subset agentkernel builds: one
// stage of FROM, RUN, COPY, ADD, ENV, ARG, WORKDIR, USER, ENTRYPOINT, CMD,
// LABEL and EXPOSE. Anything else (other instructions, multi-stage
// builds, heredocs, RUN --mount, COPY --from, parser directives other
// than syntax) is refused with an error that names it and its line.
//
// It is a small strict parser of its own rather than BuildKit's
// (github.com/moby/buildkit/frontend/dockerfile/parser): that package
// comes with the whole BuildKit module in go.mod, while what we accept is
// a few dozen lines of grammar. Input is untrusted: its size, line
// length and instruction count are bounded, and it never panics (fuzzed).
package dockerfile

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Bounds on a Dockerfile.
const (
	MaxBytes        = 1 << 20
	maxInstructions = 1000
	maxLine         = 64 << 10
)

// Instruction is one parsed instruction.
type Instruction struct {
	Line int    // 1-based line where it starts
	Cmd  string // upper case: FROM, RUN, …
	// Original is the instruction's text with continuations joined.
	Original string
	// Rest is the text after the keyword and flags.
	Rest string
	// Flags are the --name=value flags before Rest (COPY and ADD only).
	Flags map[string]string
	// JSON is set when Rest is an exec-form JSON array; Args holds it.
	JSON bool
	Args []string
}

var supported = map[string]bool{
	"FROM": true, "RUN": true, "COPY": true, "ADD": true, "ENV": true, "ARG": true, "WORKDIR": true,
	"USER": true, "ENTRYPOINT": true, "CMD": true, "LABEL": true, "EXPOSE": true,
}

var known = map[string]bool{
	"HEALTHCHECK": true, "ONBUILD": true, "STOPSIGNAL": true, "SHELL": true, "VOLUME": true, "MAINTAINER": true,
}

func errf(line int, format string, a ...any) error {
	return fmt.Errorf("%w: Dockerfile line %d: %s", errdefs.ErrInvalidArgument, line, fmt.Sprintf(format, a...))
}

func unsupported(line int, format string, a ...any) error {
	return fmt.Errorf("%w: Dockerfile line %d: %s", errdefs.ErrNotImplemented, line, fmt.Sprintf(format, a...))
}

// Parse parses a whole Dockerfile. Only ARG instructions may come before
// the single FROM.
func Parse(src []byte) ([]Instruction, error) {
	if len(src) > MaxBytes {
		return nil, fmt.Errorf("%w: the Dockerfile is %d bytes (at most %d)", errdefs.ErrTooLarge, len(src), MaxBytes)
	}
	sc := bufio.NewScanner(strings.NewReader(string(src)))
	sc.Buffer(make([]byte, 4096), maxLine)
	var out []Instruction
	var cur strings.Builder
	start, n := 0, 0
	directives := true
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			if directives && cur.Len() == 0 {
				if k, v, ok := strings.Cut(strings.TrimSpace(trimmed[1:]), "="); ok && !strings.ContainsAny(strings.TrimSpace(k), " \t") {
					switch strings.ToLower(strings.TrimSpace(k)) {
					case "syntax", "check":
						continue
					case "escape":
						if strings.TrimSpace(v) != `\` {
							return nil, unsupported(n, "the escape directive %q is not supported", strings.TrimSpace(v))
						}
						continue
					}
				}
			}
			directives = false
			continue // comments, also inside continuations
		}
		directives = false
		if trimmed == "" && cur.Len() == 0 {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(strings.TrimLeft(line, " \t"), `\`))
			if cur.Len() > maxLine {
				return nil, errf(start, "instruction longer than %d bytes", maxLine)
			}
			continue
		}
		cur.WriteString(strings.TrimLeft(line, " \t"))
		in, err := parseOne(start, cur.String())
		cur.Reset()
		if err != nil {
			return nil, err
		}
		if len(out) >= maxInstructions {
			return nil, errf(start, "more than %d instructions", maxInstructions)
		}
		out = append(out, in)
	}
	if err := sc.Err(); err != nil {
		return nil, errf(n+1, "%v", err)
	}
	if cur.Len() > 0 {
		in, err := parseOne(start, cur.String())
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, check(out)
}

// check enforces one stage: ARGs, then FROM, then no other FROM.
func check(ins []Instruction) error {
	from := false
	for _, in := range ins {
		switch {
		case in.Cmd == "FROM" && from:
			return unsupported(in.Line, "a second FROM: multi-stage builds are not supported")
		case in.Cmd == "FROM":
			from = true
		case !from && in.Cmd != "ARG":
			return errf(in.Line, "%s before FROM (only ARG may come before it)", in.Cmd)
		}
	}
	if !from {
		return fmt.Errorf("%w: the Dockerfile has no FROM", errdefs.ErrInvalidArgument)
	}
	return nil
}

func parseOne(line int, text string) (Instruction, error) {
	if strings.ContainsRune(text, 0) {
		return Instruction{}, errf(line, "NUL byte")
	}
	kw, rest, _ := strings.Cut(text, " ")
	if k2, r2, ok := strings.Cut(kw, "\t"); ok {
		kw, rest = k2, r2+" "+rest
	}
	cmd := strings.ToUpper(kw)
	rest = strings.TrimSpace(rest)
	in := Instruction{Line: line, Cmd: cmd, Original: strings.TrimSpace(text)}
	switch {
	case known[cmd]:
		return in, unsupported(line, "unsupported instruction %s", cmd)
	case !supported[cmd]:
		return in, errf(line, "unknown instruction %.40q", kw)
	}
	if strings.Contains(rest, "<<") && (cmd == "RUN" || cmd == "COPY" || cmd == "ADD") && heredoc(rest) {
		return in, unsupported(line, "heredocs (<<) in %s are not supported", cmd)
	}
	for strings.HasPrefix(rest, "--") {
		flag, after, _ := strings.Cut(rest, " ")
		name, value, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
		switch {
		case (cmd == "COPY" || cmd == "ADD") && (name == "chown" || name == "chmod"):
		case cmd == "FROM" || cmd == "RUN" || cmd == "COPY" || cmd == "ADD":
			return in, unsupported(line, "%s --%s is not supported", cmd, name)
		default:
			return in, errf(line, "%s takes no flags (--%s)", cmd, name)
		}
		if in.Flags == nil {
			in.Flags = map[string]string{}
		}
		in.Flags[name] = value
		rest = strings.TrimSpace(after)
	}
	in.Rest = rest
	if rest == "" {
		return in, errf(line, "%s needs arguments", cmd)
	}
	switch cmd {
	case "RUN", "CMD", "ENTRYPOINT", "COPY", "ADD":
		if strings.HasPrefix(rest, "[") {
			var args []string
			if err := json.Unmarshal([]byte(rest), &args); err == nil {
				if len(args) == 0 {
					return in, errf(line, "%s with an empty list", cmd)
				}
				in.JSON, in.Args = true, args
				break
			}
		}
		if cmd == "COPY" || cmd == "ADD" {
			words, err := Words(rest)
			if err != nil {
				return in, errf(line, "%v", err)
			}
			in.Args = words
		}
	case "FROM":
		words, err := Words(rest)
		if err != nil {
			return in, errf(line, "%v", err)
		}
		if len(words) == 3 && strings.EqualFold(words[1], "AS") {
			words = words[:1] // a stage name is harmless in a single stage
		}
		if len(words) != 1 {
			return in, errf(line, "FROM takes one image (FROM IMAGE [AS NAME])")
		}
		in.Args = words
	default:
		words, err := Words(rest)
		if err != nil {
			return in, errf(line, "%v", err)
		}
		in.Args = words
	}
	if (cmd == "COPY" || cmd == "ADD") && len(in.Args) < 2 {
		return in, errf(line, "%s needs at least one source and a destination", cmd)
	}
	return in, nil
}

// heredoc says whether s has a heredoc marker ("<<EOF", "<<-EOF",
// "<<'EOF'") outside quotes.
func heredoc(s string) bool {
	i := strings.Index(s, "<<")
	for i >= 0 {
		r := strings.TrimPrefix(s[i+2:], "-")
		if r != "" && (r[0] == '"' || r[0] == '\'' || r[0] == '_' || r[0] >= 'A' && r[0] <= 'Z' || r[0] >= 'a' && r[0] <= 'z') {
			return true
		}
		j := strings.Index(s[i+2:], "<<")
		if j < 0 {
			break
		}
		i += 2 + j
	}
	return false
}

// Words splits s into words as Dockerfile arguments are split: on
// unquoted white space, with "…" and '…' quoting and \ escaping the next
// character (outside single quotes). Quotes are removed.
func Words(s string) ([]string, error) {
	var out []string
	var w strings.Builder
	inWord := false
	var quote rune
	esc := false
	for _, r := range s {
		switch {
		case esc:
			w.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if esc {
		w.WriteRune('\\')
	}
	if inWord {
		out = append(out, w.String())
	}
	return out, nil
}
