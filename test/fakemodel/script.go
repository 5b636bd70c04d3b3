package fakemodel

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
)

// tool is a tool a request offers, reduced to what the script needs.
type tool struct {
	Name string
	Desc string
	// Custom marks an OpenAI custom (freeform) tool, whose input is text.
	Custom bool
	// Props maps each parameter to its JSON type ("string", "array", ...).
	Props map[string]string
}

// call is the tool call the fake makes.
type call struct {
	Tool   string
	Custom bool
	Args   map[string]any // a function tool's arguments
	Input  string         // a custom tool's input
}

// argsJSON returns a function call's arguments as JSON text.
func (c *call) argsJSON() string { return mustJSON(c.Args) }

// turn is what the script needs from a request, whatever its API.
type turn struct {
	tools      []tool
	toolResult bool // the conversation carries a tool result
	body       any  // the decoded body, searched for the working directory
}

// answer is what the fake replies.
type answer struct {
	kind Kind
	text string
	call *call
}

// decide follows the script for one request.
func (s *Server) decide(t turn) (answer, error) {
	switch {
	case t.toolResult:
		return answer{kind: KindFinal, text: s.script.FinalText}, nil
	case len(t.tools) == 0:
		return answer{kind: KindSide, text: s.script.SideText}, nil
	}
	c, err := s.planWrite(t)
	if err != nil {
		return answer{}, err
	}
	return answer{kind: KindToolCall, call: c}, nil
}

// Parameter names that carry a file's path, and its content.
var (
	pathParams    = []string{"file_path", "filePath", "path", "absolute_path", "filename", "file"}
	contentParams = []string{"content", "contents", "file_text", "text"}
)

// planWrite picks, from the tools offered, one that writes the script's
// file: a file-writing tool, else a shell tool, else Codex's code-mode exec
// tool (JavaScript calling exec_command or apply_patch), else apply_patch.
func (s *Server) planWrite(t turn) (*call, error) {
	if c := s.script.Call; c != nil {
		// A named tool (an MCP server's, say) with the script's
		// arguments, when the request offers a tool of that name or
		// ending in "__"+name (Claude Code's mcp__SERVER__TOOL).
		for _, tl := range t.tools {
			if tl.Name == c.Tool || strings.HasSuffix(tl.Name, "__"+c.Tool) {
				return &call{Tool: tl.Name, Args: c.Args}, nil
			}
		}
		return nil, fmt.Errorf("the request offers no tool %q", c.Tool)
	}
	p := s.filePath(t.body)
	content := s.script.FileContent

	for _, tl := range t.tools {
		name := strings.ToLower(tl.Name)
		if tl.Custom || !(strings.Contains(name, "write") || strings.Contains(name, "create")) {
			continue
		}
		pp, cp := firstProp(tl, "string", pathParams...), firstProp(tl, "string", contentParams...)
		if pp != "" && cp != "" {
			return &call{Tool: tl.Name, Args: map[string]any{pp: p, cp: content}}, nil
		}
	}

	script := shellWrite(p, content)
	for _, tl := range t.tools {
		name := strings.ToLower(tl.Name)
		if tl.Custom || !(strings.Contains(name, "shell") || strings.Contains(name, "bash") || strings.Contains(name, "exec")) {
			continue
		}
		args := map[string]any{}
		switch {
		case tl.Props["cmd"] == "string":
			args["cmd"] = script
		case tl.Props["command"] == "string":
			args["command"] = script
		case tl.Props["command"] == "array":
			args["command"] = []string{"bash", "-c", script}
		default:
			continue
		}
		if tl.Props["description"] == "string" {
			args["description"] = "Write " + p
		}
		return &call{Tool: tl.Name, Args: args}, nil
	}

	// Codex's code mode: a freeform "exec" tool that runs JavaScript which
	// reaches the other tools through a global tools object.
	patch := addFilePatch(p, content)
	for _, tl := range t.tools {
		if !tl.Custom || tl.Name != "exec" {
			continue
		}
		switch {
		case strings.Contains(tl.Desc, "exec_command("):
			js := "const r = await tools.exec_command({cmd: " + mustJSON(script) + "});\ntext(r.output ?? \"\");\n"
			return &call{Tool: tl.Name, Custom: true, Input: js}, nil
		case strings.Contains(tl.Desc, "apply_patch("):
			js := "text(await tools.apply_patch(" + mustJSON(patch) + "));\n"
			return &call{Tool: tl.Name, Custom: true, Input: js}, nil
		}
	}

	for _, tl := range t.tools {
		if tl.Name != "apply_patch" {
			continue
		}
		switch {
		case tl.Custom:
			return &call{Tool: tl.Name, Custom: true, Input: patch}, nil
		case tl.Props["input"] == "string":
			return &call{Tool: tl.Name, Args: map[string]any{"input": patch}}, nil
		case tl.Props["command"] == "array":
			return &call{Tool: tl.Name, Args: map[string]any{"command": []string{"apply_patch", patch}}}, nil
		}
	}

	names := make([]string, len(t.tools))
	for i, tl := range t.tools {
		names[i] = tl.Name
	}
	sort.Strings(names)
	return nil, fmt.Errorf("no known tool to write a file among the %d offered: %s", len(names), strings.Join(names, ", "))
}

// firstProp returns the first of names that tl has as a parameter of type typ.
func firstProp(tl tool, typ string, names ...string) string {
	for _, n := range names {
		if tl.Props[n] == typ {
			return n
		}
	}
	return ""
}

// shellWrite is a shell command that writes content to p exactly.
func shellWrite(p, content string) string {
	cmd := "printf '%s' " + shellQuote(content) + " > " + shellQuote(p)
	if d := path.Dir(p); d != "." && d != "/" {
		cmd = "mkdir -p " + shellQuote(d) + " && " + cmd
	}
	return cmd
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// addFilePatch is an apply_patch patch that adds p. (apply_patch ends every
// line with a newline, so content without a final newline gains one.)
func addFilePatch(p, content string) string {
	var b strings.Builder
	b.WriteString("*** Begin Patch\n*** Add File: " + p + "\n")
	for _, line := range strings.SplitAfter(strings.TrimSuffix(content, "\n"), "\n") {
		b.WriteString("+" + strings.TrimSuffix(line, "\n") + "\n")
	}
	b.WriteString("*** End Patch")
	return b.String()
}

// Where each CLI states its working directory in the prompt.
var dirPatterns = []*regexp.Regexp{
	regexp.MustCompile(`Primary working directory: (/[^\s]*)`),                                  // Claude Code
	regexp.MustCompile(`<cwd>(/[^<\n]*)</cwd>`),                                                 // Codex CLI
	regexp.MustCompile(`Workspace Directories:\**\s*\n\s*- (/[^\n]*)`),                          // Gemini CLI
	regexp.MustCompile(`I'm currently working in the directory: (/[^\s]*)`),                     // older Gemini CLI
	regexp.MustCompile(`(?m)^\s*Working directory: (/[^\s<]*)`),                                 // OpenCode
	regexp.MustCompile(`(?i)(?:current|working) (?:working )?directory(?: is)?:? (/[^\s<"']*)`), // others
}

// filePath is the path to put in the tool call: Script.FilePath joined to
// the agent's working directory when that is known.
func (s *Server) filePath(body any) string {
	p := s.script.FilePath
	if path.IsAbs(p) {
		return p
	}
	dir := s.script.Dir
	if dir == "" {
		dir = findDir(body)
	}
	if dir == "" {
		return p
	}
	return path.Join(dir, p)
}

// findDir looks for the working directory the prompt in body names.
func findDir(body any) string {
	var b strings.Builder
	collectStrings(body, &b)
	text := b.String()
	for _, re := range dirPatterns {
		if m := re.FindStringSubmatch(text); m != nil {
			return strings.TrimRight(strings.TrimSpace(m[1]), ".,;")
		}
	}
	return ""
}

// collectStrings appends every string in a decoded JSON value to b.
func collectStrings(v any, b *strings.Builder) {
	switch v := v.(type) {
	case string:
		b.WriteString(v)
		b.WriteByte('\n')
	case []any:
		for _, e := range v {
			collectStrings(e, b)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			collectStrings(v[k], b)
		}
	}
}

// schemaProps reads a JSON schema's top-level parameters and their types.
func schemaProps(schema any) map[string]string {
	props := map[string]string{}
	m, _ := schema.(map[string]any)
	pm, _ := m["properties"].(map[string]any)
	for name, p := range pm {
		props[name] = schemaType(p)
	}
	return props
}

// schemaType returns a schema's type in lower case ("string", "array", ...).
func schemaType(schema any) string {
	m, _ := schema.(map[string]any)
	switch t := m["type"].(type) {
	case string:
		return strings.ToLower(t)
	case []any:
		for _, e := range t {
			if s, ok := e.(string); ok && s != "null" {
				return strings.ToLower(s)
			}
		}
	}
	switch {
	case m["properties"] != nil:
		return "object"
	case m["items"] != nil:
		return "array"
	case m["anyOf"] != nil:
		if alts, ok := m["anyOf"].([]any); ok && len(alts) > 0 {
			return schemaType(alts[0])
		}
	}
	return ""
}

// sampleJSON returns a small value that fits schema, for side requests
// that ask for structured output. An enum offering "user" picks it (Gemini
// CLI's next-speaker check then hands the turn back); integers are their
// minimum or 1 (Gemini CLI's router wants a score of 1 to 100), other
// numbers their minimum or 0 (so no loop detector's confidence fires).
func sampleJSON(schema any) any {
	m, _ := schema.(map[string]any)
	if enum, ok := m["enum"].([]any); ok && len(enum) > 0 {
		for _, e := range enum {
			if e == "user" {
				return e
			}
		}
		return enum[0]
	}
	switch schemaType(schema) {
	case "object":
		out := map[string]any{}
		props, _ := m["properties"].(map[string]any)
		req, _ := m["required"].([]any)
		if len(req) == 0 {
			for k := range props {
				req = append(req, k)
			}
		}
		for _, k := range req {
			if name, ok := k.(string); ok {
				out[name] = sampleJSON(props[name])
			}
		}
		return out
	case "array":
		return []any{}
	case "integer":
		if min, ok := m["minimum"].(float64); ok {
			return min
		}
		return 1
	case "number":
		if min, ok := m["minimum"].(float64); ok {
			return min
		}
		return 0
	case "boolean":
		return false
	case "null":
		return nil
	}
	return "OK"
}
