package plugin

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// The Codex configuration is edited as text, so that comments, order and
// other tables stay exactly as they are; go-toml only validates.

var (
	// tomlHeader is a table or array-of-tables header line. A line of a
	// multi-line array such as `  [1, 2],` does not match (the comma).
	tomlHeader = regexp.MustCompile(`^\s*\[\[?\s*[A-Za-z0-9_\-."' ]+\s*\]\]?\s*(#.*)?\r?$`)
	// ourHeader is [mcp_servers.agentkernel], keys quoted or not.
	ourHeader = regexp.MustCompile(`^\s*\[\s*("mcp_servers"|'mcp_servers'|mcp_servers)\s*\.\s*("agentkernel"|'agentkernel'|agentkernel)\s*\]\s*(#.*)?\r?$`)
	// ourSubHeader is a table below it, such as [mcp_servers.agentkernel.env].
	ourSubHeader = regexp.MustCompile(`^\s*\[\[?\s*("mcp_servers"|'mcp_servers'|mcp_servers)\s*\.\s*("agentkernel"|'agentkernel'|agentkernel)\s*\.`)
)

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// codexBlock is the table Codex needs.
func codexBlock(bin string) []string {
	return []string{
		"[mcp_servers.agentkernel]",
		"command = " + tomlString(bin),
		`args = ["mcp-server"]`,
	}
}

// codexEntry parses content and returns mcp_servers.agentkernel (nil if
// absent).
func codexEntry(name string, content []byte) (map[string]any, error) {
	var doc map[string]any
	if err := toml.Unmarshal(content, &doc); err != nil {
		return nil, fmt.Errorf("%s is not valid TOML (%v); fix or move it first", name, err)
	}
	servers, ok := doc["mcp_servers"]
	if !ok {
		return nil, nil
	}
	sm, ok := servers.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: mcp_servers is not a table; fix it first", name)
	}
	e, ok := sm["agentkernel"]
	if !ok {
		return nil, nil
	}
	em, ok := e.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: mcp_servers.agentkernel is not a table; fix it first", name)
	}
	return em, nil
}

func codexMatches(e map[string]any, bin string) bool {
	return e["command"] == bin && reflect.DeepEqual(e["args"], []any{"mcp-server"})
}

// splitLines splits content into lines without their "\n" (a final
// newline gives no empty last line).
func splitLines(content []byte) []string {
	s := string(content)
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func joinLines(lines []string) []byte {
	if len(lines) == 0 {
		return []byte{}
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

func blankOrComment(l string) bool {
	t := strings.TrimSpace(l)
	return t == "" || strings.HasPrefix(t, "#")
}

// findCodexBlock returns the lines [start, end) of [mcp_servers.agentkernel]
// and its subtables, less the blank and comment lines before the next table
// (they belong to it); start is -1 when there is no such header.
func findCodexBlock(lines []string) (start, end int) {
	start = -1
	for i, l := range lines {
		if ourHeader.MatchString(l) {
			start = i
			break
		}
	}
	if start < 0 {
		return -1, -1
	}
	end = len(lines)
	for i := start + 1; i < len(lines); i++ {
		if tomlHeader.MatchString(lines[i]) && !ourSubHeader.MatchString(lines[i]) {
			end = i
			break
		}
	}
	for end > start+1 && blankOrComment(lines[end-1]) {
		end--
	}
	return start, end
}

// InstallCodex adds [mcp_servers.agentkernel] to a Codex config.toml,
// keeping the rest of the text as is. A matching entry (command and args;
// other keys such as env may be there) leaves content unchanged; a
// differing one needs force, which replaces its table.
func InstallCodex(name string, content []byte, bin string, force bool) ([]byte, Status, error) {
	e, err := codexEntry(name, content)
	if err != nil {
		return nil, 0, err
	}
	if e != nil && codexMatches(e, bin) {
		return content, StatusUnchanged, nil
	}
	if e != nil && !force {
		return nil, 0, &DiffersError{File: name, Key: "mcp_servers.agentkernel"}
	}
	lines := splitLines(content)
	status := StatusCreated
	if len(strings.TrimSpace(string(content))) > 0 {
		status = StatusUpdated
	}
	if e != nil {
		start, end := findCodexBlock(lines)
		if start < 0 {
			return nil, 0, fmt.Errorf("%s defines mcp_servers.agentkernel in a form this installer does not edit (not as a [mcp_servers.agentkernel] table); edit it by hand", name)
		}
		out := append(append(append([]string{}, lines[:start]...), codexBlock(bin)...), lines[end:]...)
		lines = out
	} else {
		if len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) != "" {
			lines = append(lines, "")
		}
		lines = append(lines, codexBlock(bin)...)
	}
	out := joinLines(lines)
	ne, err := codexEntry(name+" (edited)", out)
	if err != nil {
		return nil, 0, err
	}
	if ne == nil || !codexMatches(ne, bin) {
		return nil, 0, fmt.Errorf("%s: the edited file does not define mcp_servers.agentkernel as expected; edit it by hand", name)
	}
	return out, status, nil
}

// UninstallCodex removes the [mcp_servers.agentkernel] table and its
// subtables, keeping everything else.
func UninstallCodex(name string, content []byte) ([]byte, Status, error) {
	e, err := codexEntry(name, content)
	if err != nil {
		return nil, 0, err
	}
	if e == nil {
		return content, StatusUnchanged, nil
	}
	lines := splitLines(content)
	start, end := findCodexBlock(lines)
	if start < 0 {
		return nil, 0, fmt.Errorf("%s defines mcp_servers.agentkernel in a form this installer does not edit (not as a [mcp_servers.agentkernel] table); edit it by hand", name)
	}
	rest := append(append([]string{}, lines[:start]...), lines[end:]...)
	// Drop the blank line install put before the table.
	if start > 0 && start == len(rest) && strings.TrimSpace(rest[start-1]) == "" {
		rest = rest[:start-1]
	} else if start > 0 && start < len(rest) && strings.TrimSpace(rest[start-1]) == "" && strings.TrimSpace(rest[start]) == "" {
		rest = append(rest[:start-1], rest[start:]...)
	}
	out := joinLines(rest)
	ne, err := codexEntry(name+" (edited)", out)
	if err != nil {
		return nil, 0, err
	}
	if ne != nil {
		return nil, 0, fmt.Errorf("%s still defines mcp_servers.agentkernel after removing its table; edit it by hand", name)
	}
	return out, StatusUpdated, nil
}

// InspectCodex reports whether Codex's config has the entry and whether it
// matches bin.
func InspectCodex(name string, content []byte, bin string) (present, same bool, err error) {
	e, err := codexEntry(name, content)
	if err != nil || e == nil {
		return false, false, err
	}
	return true, codexMatches(e, bin), nil
}
