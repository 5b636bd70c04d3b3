// Package compatdoc reads the machine-readable rows of docs/COMPAT.md: one
// row per part of upstream agentkernel's interface (a command, a flag, an
// HTTP route, a config key, an environment variable, an MCP tool) and what
// this agentkernel does with it. Tests of the CLI, the HTTP API, the config
// parser and the MCP server hold the code to the rows marked "same".
//
// A row is a Markdown table row whose first cell is a code span:
//
//	| `run --keep/-k` | bool | same | 0.4.0 | … |
//
// The cells are the key, the kind, the status, the upstream source and free
// notes. Rows of any other shape are prose and are skipped.
package compatdoc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Kinds of row, by what the key names.
const (
	KindCommand = "cmd"    // a command path: "sandbox cp"
	KindBool    = "bool"   // a flag without a value: "run --keep/-k"
	KindValue   = "value"  // a flag that takes a value: "run --image/-i"
	KindRoute   = "route"  // "METHOD /path/{param}"
	KindConfig  = "config" // agentkernel.toml: "[section] key = sample" or "[section]"
	KindEnv     = "env"    // an environment variable
	KindMCP     = "mcp"    // an MCP tool name
)

// Statuses. Only StatusSame is checked against the code; the others say
// why not.
const (
	StatusSame       = "same"
	StatusDifferent  = "different"
	StatusNotOffered = "not offered"
	StatusNotYet     = "not offered (yet)"
)

var (
	kinds    = map[string]bool{KindCommand: true, KindBool: true, KindValue: true, KindRoute: true, KindConfig: true, KindEnv: true, KindMCP: true}
	statuses = map[string]bool{StatusSame: true, StatusDifferent: true, StatusNotOffered: true, StatusNotYet: true}
)

// Row is one row of the table.
type Row struct {
	Line   int // 1-based line in the file
	Key    string
	Kind   string
	Status string
	Source string
	Notes  string
}

func (r Row) String() string {
	return fmt.Sprintf("COMPAT.md:%d `%s` (%s, %s)", r.Line, r.Key, r.Kind, r.Status)
}

// Flag is a flag row's key taken apart: "sandbox create --backend/-B" is
// Command "sandbox create", Long "backend", Short "B". Command is "" for a
// flag of the root command.
type Flag struct {
	Command, Long, Short string
}

// Flag parses the key of a bool or value row.
func (r Row) Flag() (Flag, error) {
	fields := strings.Fields(r.Key)
	if len(fields) == 0 || !strings.HasPrefix(fields[len(fields)-1], "--") {
		return Flag{}, fmt.Errorf("%s: want [COMMAND…] --long[/-s]", r)
	}
	spec := strings.TrimPrefix(fields[len(fields)-1], "--")
	long, short, hasShort := strings.Cut(spec, "/-")
	if long == "" || (hasShort && len(short) != 1) {
		return Flag{}, fmt.Errorf("%s: want --long or --long/-s with one letter", r)
	}
	return Flag{Command: strings.Join(fields[:len(fields)-1], " "), Long: long, Short: short}, nil
}

// Route is a route row's key taken apart:
//
//	POST /sandboxes {name,image} -> 201 {name,status}
//
// is a POST to /sandboxes whose JSON body has at least the fields name and
// image, answering 201 with data that has at least name and status. The
// body, the status and the answer's fields are optional; a status of 0
// means the row does not say.
type Route struct {
	Method, Path string
	Req, Resp    []string
	Status       int
}

// Route parses the key of a route row.
func (r Row) Route() (Route, error) {
	bad := fmt.Errorf("%s: want METHOD /path [{field,…}] [-> STATUS [{field,…}]]", r)
	fields := strings.Fields(r.Key)
	if len(fields) < 2 || fields[0] != strings.ToUpper(fields[0]) || !strings.HasPrefix(fields[1], "/") {
		return Route{}, bad
	}
	rt := Route{Method: fields[0], Path: fields[1]}
	rest := fields[2:]
	set := func(dst *[]string) {
		if len(rest) > 0 && strings.HasPrefix(rest[0], "{") && strings.HasSuffix(rest[0], "}") {
			*dst = strings.Split(strings.Trim(rest[0], "{}"), ",")
			rest = rest[1:]
		}
	}
	set(&rt.Req)
	if len(rest) >= 2 && rest[0] == "->" {
		if _, err := fmt.Sscanf(rest[1], "%d", &rt.Status); err != nil || rt.Status < 100 || rt.Status > 599 {
			return Route{}, bad
		}
		rest = rest[2:]
		set(&rt.Resp)
	}
	if len(rest) > 0 {
		return Route{}, bad
	}
	return rt, nil
}

// Parse reads the rows of a COMPAT.md. An unknown kind or status, or a key
// listed twice with the same kind, is an error naming its line.
func Parse(data []byte) ([]Row, error) {
	var rows []Row
	var errs []error
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 5 {
			errs = append(errs, fmt.Errorf("COMPAT.md:%d: want | `key` | kind | status | source | notes |", n))
			continue
		}
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		key := cells[0]
		if len(key) < 3 || !strings.HasSuffix(key, "`") || strings.Count(key, "`") != 2 {
			errs = append(errs, fmt.Errorf("COMPAT.md:%d: the key must be one code span", n))
			continue
		}
		r := Row{Line: n, Key: key[1 : len(key)-1], Kind: cells[1], Status: cells[2], Source: cells[3],
			Notes: strings.TrimSpace(strings.Join(cells[4:], "|"))}
		switch {
		case !kinds[r.Kind]:
			errs = append(errs, fmt.Errorf("%s: unknown kind %q", r, r.Kind))
		case !statuses[r.Status]:
			errs = append(errs, fmt.Errorf("%s: unknown status %q", r, r.Status))
		case r.Source == "":
			errs = append(errs, fmt.Errorf("%s: no upstream source", r))
		case r.Status != StatusSame && r.Notes == "":
			errs = append(errs, fmt.Errorf("%s: a row that is not the same must say how or why", r))
		}
		id := r.Kind + " " + r.Key
		if prev, dup := seen[id]; dup {
			errs = append(errs, fmt.Errorf("%s: already on line %d", r, prev))
		}
		seen[id] = n
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return rows, errors.Join(errs...)
}

// Load finds docs/COMPAT.md in the module that holds the working directory
// (tests run in their package's directory) and parses it.
func Load() ([]Row, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, errors.New("compatdoc: no go.mod above the working directory")
		}
		dir = parent
	}
	data, err := os.ReadFile(filepath.Join(dir, "docs", "COMPAT.md"))
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Select returns the rows of the given kinds and status.
func Select(rows []Row, status string, kinds ...string) []Row {
	var out []Row
	for _, r := range rows {
		if r.Status != status {
			continue
		}
		for _, k := range kinds {
			if r.Kind == k {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// Accepted loads docs/COMPAT.md (as Load) and returns its rows of the
// given kinds that promise upstream's spelling works here: those marked
// same or different. No such row is an error, so a test cannot pass by
// checking nothing.
func Accepted(kinds ...string) ([]Row, error) {
	rows, err := Load()
	if err != nil {
		return nil, err
	}
	out := append(Select(rows, StatusSame, kinds...), Select(rows, StatusDifferent, kinds...)...)
	if len(out) == 0 {
		return nil, fmt.Errorf("docs/COMPAT.md has no %v rows marked same or different", kinds)
	}
	return out, nil
}
