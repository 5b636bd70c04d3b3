package plugin

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"
)

const bin = "/opt/agentkernel/bin/agentkernel"

func TestInstallJSONMergesAndIsIdempotent(t *testing.T) {
	in := []byte(`{"theme": "dark", "big": 12345678901234567890, "mcpServers": {"other": {"command": "x", "args": ["<a&b>"]}}}`)
	out, st, err := InstallJSON("settings.json", in, []string{"mcpServers", "agentkernel"}, stdioEntry(bin), false)
	if err != nil || st != StatusUpdated {
		t.Fatalf("install: %v %v", st, err)
	}
	s := string(out)
	for _, want := range []string{`"theme": "dark"`, `"big": 12345678901234567890`, `"other": {`, `"<a&b>"`,
		`"agentkernel": {`, `"command": "` + bin + `"`, "\n  \"mcpServers\": {"} {
		if !strings.Contains(s, want) {
			t.Errorf("missing %q in\n%s", want, s)
		}
	}
	again, st, err := InstallJSON("settings.json", out, []string{"mcpServers", "agentkernel"}, stdioEntry(bin), false)
	if err != nil || st != StatusUnchanged || string(again) != s {
		t.Fatalf("second install: %v %v\n%s", st, err, again)
	}
	// A matching entry with keys the user added (env) is installed too.
	withEnv := []byte(`{"mcpServers":{"agentkernel":{"command":"` + bin + `","args":["mcp-server"],"env":{"A":"1"}}}}`)
	if o, st, err := InstallJSON("f", withEnv, []string{"mcpServers", "agentkernel"}, stdioEntry(bin), false); err != nil || st != StatusUnchanged || string(o) != string(withEnv) {
		t.Fatalf("entry with env: %v %v", st, err)
	}
}

func TestInstallJSONEmptyAndNew(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("  \n")} {
		out, st, err := InstallJSON("x.json", in, []string{"mcp", "agentkernel"}, opencodeEntry(bin), false)
		if err != nil || st != StatusCreated {
			t.Fatal(st, err)
		}
		want := "{\n  \"mcp\": {\n    \"agentkernel\": {\n      \"command\": [\n        \"" + bin + "\",\n        \"mcp-server\"\n      ],\n      \"enabled\": true,\n      \"type\": \"local\"\n    }\n  }\n}\n"
		if string(out) != want {
			t.Fatalf("got\n%s", out)
		}
	}
}

func TestInstallJSONDiffersNeedsForce(t *testing.T) {
	in := []byte(`{"mcpServers":{"agentkernel":{"command":"/old/agentkernel","args":["mcp-server"]},"keep":{"command":"k"}}}`)
	_, _, err := InstallJSON("/home/u/.claude.json", in, []string{"mcpServers", "agentkernel"}, stdioEntry(bin), false)
	var de *DiffersError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "/home/u/.claude.json") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("want a DiffersError naming the file, got %v", err)
	}
	out, st, err := InstallJSON("/home/u/.claude.json", in, []string{"mcpServers", "agentkernel"}, stdioEntry(bin), true)
	if err != nil || st != StatusUpdated {
		t.Fatal(st, err)
	}
	var doc struct {
		MCPServers map[string]struct {
			Command string
			Args    []string
		}
	}
	if err := json.Unmarshal(out, &doc); err != nil || doc.MCPServers["agentkernel"].Command != bin || doc.MCPServers["keep"].Command != "k" {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestInstallJSONRefusesInvalid(t *testing.T) {
	for _, in := range []string{`{"a":`, `[1,2]`, `{"a":1} {"b":2}`, `{"mcpServers": 3}`, "// comment\n{}"} {
		_, _, err := InstallJSON("/p/.mcp.json", []byte(in), []string{"mcpServers", "agentkernel"}, stdioEntry(bin), true)
		if err == nil || !strings.Contains(err.Error(), "/p/.mcp.json") {
			t.Errorf("%q: want an error naming the file, got %v", in, err)
		}
	}
}

func TestUninstallJSONKeepsTheRest(t *testing.T) {
	in := []byte(`{"x":[1,2],"mcpServers":{"other":{"command":"o"}}}`)
	out, _, err := InstallJSON("f", in, []string{"mcpServers", "agentkernel"}, stdioEntry(bin), false)
	if err != nil {
		t.Fatal(err)
	}
	back, st, err := UninstallJSON("f", out, []string{"mcpServers", "agentkernel"})
	if err != nil || st != StatusUpdated {
		t.Fatal(st, err)
	}
	var a, b any
	json.Unmarshal(in, &a)
	json.Unmarshal(back, &b)
	if !jsonEqual(a, b) {
		t.Fatalf("got\n%s", back)
	}
	if o, st, err := UninstallJSON("f", back, []string{"mcpServers", "agentkernel"}); err != nil || st != StatusUnchanged || string(o) != string(back) {
		t.Fatal("second uninstall changed something", st, err)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

const codexConfig = `# my codex config
model = "o3" # inline comment

[mcp_servers.other]
# the other server
command = "other"
args = ["a", "b"]

[profiles.fast]
model = "fast"
`

func TestInstallCodexKeepsCommentsAndTables(t *testing.T) {
	out, st, err := InstallCodex("config.toml", []byte(codexConfig), bin, false)
	if err != nil || st != StatusUpdated {
		t.Fatal(st, err)
	}
	want := codexConfig + "\n[mcp_servers.agentkernel]\ncommand = \"" + bin + "\"\nargs = [\"mcp-server\"]\n"
	if string(out) != want {
		t.Fatalf("got\n%s", out)
	}
	again, st, err := InstallCodex("config.toml", out, bin, false)
	if err != nil || st != StatusUnchanged || string(again) != string(out) {
		t.Fatal("second install changed something", st, err)
	}
	back, st, err := UninstallCodex("config.toml", out)
	if err != nil || st != StatusUpdated || string(back) != codexConfig {
		t.Fatalf("uninstall: %v %v\n%s", st, err, back)
	}
	if o, st, err := UninstallCodex("config.toml", back); err != nil || st != StatusUnchanged || string(o) != codexConfig {
		t.Fatal("second uninstall changed something", st, err)
	}
}

func TestInstallCodexEmptyAndNoNewline(t *testing.T) {
	out, st, err := InstallCodex("c", nil, bin, false)
	if err != nil || st != StatusCreated || string(out) != "[mcp_servers.agentkernel]\ncommand = \""+bin+"\"\nargs = [\"mcp-server\"]\n" {
		t.Fatalf("%v %v\n%s", st, err, out)
	}
	out, _, err = InstallCodex("c", []byte(`model = "x"`), bin, false)
	if err != nil || !strings.HasPrefix(string(out), "model = \"x\"\n\n[mcp_servers.agentkernel]\n") {
		t.Fatalf("%v\n%s", err, out)
	}
	// An odd path is quoted so that it parses back.
	odd := `/tmp/a "b"\c/ünï	agentkernel`
	out, _, err = InstallCodex("c", nil, odd, false)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		MCPServers map[string]struct{ Command string } `toml:"mcp_servers"`
	}
	if err := toml.Unmarshal(out, &doc); err != nil || doc.MCPServers["agentkernel"].Command != odd {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestInstallCodexForceReplacesOnlyItsTable(t *testing.T) {
	in := `# top
[mcp_servers.agentkernel]
command = "/old/agentkernel"
args = ["mcp-server", "--profile", "strict"]

[mcp_servers.agentkernel.env]
A = "1"

# about profiles
[profiles.fast]
model = "fast"
matrix = [
  [1, 2],
]
`
	_, _, err := InstallCodex("/h/.codex/config.toml", []byte(in), bin, false)
	var de *DiffersError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "/h/.codex/config.toml") {
		t.Fatalf("want DiffersError, got %v", err)
	}
	out, _, err := InstallCodex("/h/.codex/config.toml", []byte(in), bin, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "# top\n[mcp_servers.agentkernel]\ncommand = \"" + bin + "\"\nargs = [\"mcp-server\"]\n\n# about profiles\n[profiles.fast]\nmodel = \"fast\"\nmatrix = [\n  [1, 2],\n]\n"
	if string(out) != want {
		t.Fatalf("got\n%s", out)
	}
	back, _, err := UninstallCodex("c", []byte(in))
	if err != nil || string(back) != "# top\n\n# about profiles\n[profiles.fast]\nmodel = \"fast\"\nmatrix = [\n  [1, 2],\n]\n" {
		t.Fatalf("%v\n%s", err, back)
	}
}

func TestCodexRefusesInvalidAndInline(t *testing.T) {
	if _, _, err := InstallCodex("/x/config.toml", []byte("a = = 1"), bin, true); err == nil || !strings.Contains(err.Error(), "/x/config.toml") {
		t.Fatalf("invalid TOML: %v", err)
	}
	inline := "[mcp_servers]\nagentkernel = { command = \"/old\", args = [] }\n"
	if _, _, err := InstallCodex("c", []byte(inline), bin, true); err == nil || !strings.Contains(err.Error(), "by hand") {
		t.Fatalf("inline: %v", err)
	}
	if _, _, err := UninstallCodex("c", []byte(inline)); err == nil {
		t.Fatal("inline uninstall should fail")
	}
	// An inline entry that matches is left alone.
	ok := "[mcp_servers]\nagentkernel = { command = \"" + bin + "\", args = [\"mcp-server\"] }\n"
	if out, st, err := InstallCodex("c", []byte(ok), bin, false); err != nil || st != StatusUnchanged || string(out) != ok {
		t.Fatal(st, err)
	}
}

func TestInstallFile(t *testing.T) {
	if out, st, _ := InstallFile("s", nil, false, []byte(Skill), false); st != StatusCreated || string(out) != Skill {
		t.Fatal(st)
	}
	if _, st, _ := InstallFile("s", []byte(Skill), true, []byte(Skill), false); st != StatusUnchanged {
		t.Fatal(st)
	}
	if _, _, err := InstallFile("/p/SKILL.md", []byte("mine"), true, []byte(Skill), false); err == nil || !strings.Contains(err.Error(), "/p/SKILL.md") {
		t.Fatal(err)
	}
	if !strings.HasPrefix(Skill, "---\nname: agentkernel\ndescription: ") || !strings.Contains(Skill, "sandbox_file_write") {
		t.Fatal("skill front matter")
	}
}

func TestDiff(t *testing.T) {
	d := Diff("f", []byte("a\nb\nc\n"), []byte("a\nB\nc\nd\n"), true, true)
	want := "--- f\n+++ f\n@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d\n"
	if d != want {
		t.Fatalf("got\n%s", d)
	}
	if Diff("f", []byte("x\n"), []byte("x\n"), true, true) != "" {
		t.Fatal("equal files have a diff")
	}
	if d := Diff("f", nil, []byte("x\n"), false, true); !strings.HasPrefix(d, "--- /dev/null\n+++ f\n") || !strings.Contains(d, "+x\n") {
		t.Fatalf("got\n%s", d)
	}
}

func testEnv(t *testing.T) Env {
	root := t.TempDir()
	env := Env{Bin: bin, Home: filepath.Join(root, "home"), ProjectDir: filepath.Join(root, "proj")}
	os.MkdirAll(env.Home, 0o755)
	os.MkdirAll(env.ProjectDir, 0o755)
	return env
}

// snapshot is every file under dir with its contents and mode.
func snapshot(t *testing.T, dir string) map[string]string {
	m := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			m[p] = fi.Mode().String() + "\n" + string(b)
		}
		return nil
	})
	return m
}

func TestPlanApplyAllTargets(t *testing.T) {
	for _, tg := range Targets {
		if tg.PrintOnly {
			continue
		}
		for _, global := range []bool{false, true} {
			env := testEnv(t)
			root := filepath.Dir(env.Home)
			// Existing configuration with another server.
			for _, f := range tg.Files(env, global) {
				var seed string
				switch f.kind {
				case kindJSON:
					seed = `{"keep": true, "` + f.key[0] + `": {"other": {"command": "o"}}}`
				case kindTOML:
					seed = codexConfig
				default:
					continue
				}
				os.MkdirAll(filepath.Dir(f.Path), 0o755)
				os.WriteFile(f.Path, []byte(seed), 0o640)
			}
			before := snapshot(t, root)

			// Dry run: Plan alone writes nothing.
			ch, err := tg.Plan(env, global, false, false, ReadOS)
			if err != nil {
				t.Fatal(tg.Name, err)
			}
			if got := snapshot(t, root); !mapsEqual(got, before) {
				t.Fatalf("%s: plan wrote", tg.Name)
			}
			if err := Apply(ch); err != nil {
				t.Fatal(err)
			}
			installed := snapshot(t, root)
			for _, s := range tg.Inspect(env, global, ReadOS) {
				if !s.Installed || !s.Current || s.Err != nil {
					t.Fatalf("%s global=%v: %+v", tg.Name, global, s)
				}
				if s.File.kind != kindSkill {
					fi, _ := os.Stat(s.File.Path)
					b, _ := os.ReadFile(s.File.Path)
					if fi.Mode().Perm() != 0o640 || !strings.Contains(string(b), "other") || !strings.Contains(string(b), bin) {
						t.Fatalf("%s: mode %v\n%s", s.File.Path, fi.Mode(), b)
					}
				}
			}
			// Twice: byte-identical.
			ch, err = tg.Plan(env, global, false, false, ReadOS)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range ch {
				if c.Status != StatusUnchanged {
					t.Fatalf("%s: second install %v %s", tg.Name, c.Status, c.File.Path)
				}
			}
			Apply(ch)
			if got := snapshot(t, root); !mapsEqual(got, installed) {
				t.Fatalf("%s: second install changed files", tg.Name)
			}
			// A different binary needs force.
			env2 := env
			env2.Bin = "/other/agentkernel"
			if _, err := tg.Plan(env2, global, false, false, ReadOS); err == nil || !strings.Contains(err.Error(), "--force") {
				t.Fatalf("%s: want --force error, got %v", tg.Name, err)
			}
			// Uninstall keeps the other server.
			ch, err = tg.Plan(env, global, false, true, ReadOS)
			if err != nil {
				t.Fatal(err)
			}
			if err := Apply(ch); err != nil {
				t.Fatal(err)
			}
			for _, s := range tg.Inspect(env, global, ReadOS) {
				if s.Installed || s.Err != nil {
					t.Fatalf("%s: still installed %+v", tg.Name, s)
				}
				if s.File.kind == kindSkill {
					if s.Exists {
						t.Fatal("skill kept")
					}
					if _, err := os.Stat(filepath.Dir(s.File.Path)); err == nil {
						t.Fatal("skill dir kept")
					}
					continue
				}
				b, _ := os.ReadFile(s.File.Path)
				if !strings.Contains(string(b), "other") {
					t.Fatalf("%s lost the other server:\n%s", s.File.Path, b)
				}
			}
			if tg.Name == "codex" {
				b, _ := os.ReadFile(tg.Files(env, global)[0].Path)
				if string(b) != codexConfig {
					t.Fatalf("codex uninstall:\n%s", b)
				}
			}
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestFilesPaths(t *testing.T) {
	env := Env{Bin: bin, Home: "/h", ProjectDir: "/p"}
	paths := func(name string, global bool) []string {
		tg, _ := Lookup(name)
		var out []string
		for _, f := range tg.Files(env, global) {
			out = append(out, f.Path)
		}
		return out
	}
	cases := map[string][]string{
		"claude false":   {"/p/.mcp.json", "/p/.claude/skills/agentkernel/SKILL.md"},
		"claude true":    {"/h/.claude.json", "/h/.claude/skills/agentkernel/SKILL.md"},
		"codex false":    {"/h/.codex/config.toml"},
		"gemini false":   {"/p/.gemini/settings.json"},
		"gemini true":    {"/h/.gemini/settings.json"},
		"opencode false": {"/p/opencode.json"},
		"opencode true":  {"/h/.config/opencode/opencode.json"},
	}
	for k, want := range cases {
		var name string
		var global bool
		if n, _ := strings.CutSuffix(k, " true"); n != k {
			name, global = n, true
		} else {
			name = strings.TrimSuffix(k, " false")
		}
		if got := paths(name, global); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s: %v", k, got)
		}
	}
	env.CodexHome = "/ch"
	if got := paths("codex", false); got[0] != "/ch/config.toml" {
		t.Error(got)
	}
	if _, err := Lookup("vim"); err == nil {
		t.Error("unknown target accepted")
	}
	var doc map[string]map[string]map[string]any
	if err := json.Unmarshal(Snippet(bin), &doc); err != nil || doc["mcpServers"]["agentkernel"]["command"] != bin {
		t.Fatal(err)
	}
}
