package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestDetectCommand(t *testing.T) {
	for argv, want := range map[string]string{
		"python3 -c print(1)":  "python:3.12-alpine",
		"/usr/bin/pip install": "python:3.12-alpine",
		"npm test":             "node:22-alpine",
		"npx tsc":              "node:22-alpine",
		"cargo build":          "rust:1.85-alpine",
		"go test ./...":        "golang:1.23-alpine",
		"bundle exec rake":     "ruby:3.3-alpine",
		"mvn package":          "eclipse-temurin:21-alpine",
		"gradle build":         "eclipse-temurin:21-alpine",
		"bash -c true":         "alpine:3.20",
		"dotnet build":         "mcr.microsoft.com/dotnet/sdk:8.0",
		"terraform plan":       "hashicorp/terraform:1.10",
	} {
		rt, ok := DetectCommand(strings.Fields(argv))
		if !ok || rt.Image != want {
			t.Errorf("%s: %+v %v, want %s", argv, rt, ok, want)
		}
	}
	for _, argv := range [][]string{nil, {}, {"definitely-unknown"}, {""}, {"python3.12"}} {
		if rt, ok := DetectCommand(argv); ok {
			t.Errorf("%q detected as %+v", argv, rt)
		}
	}
}

func TestDetectProject(t *testing.T) {
	for _, c := range []struct {
		files    map[string]string
		name     string
		template string
	}{
		{map[string]string{"package.json": "{}"}, "node", "node"},
		{map[string]string{"requirements.txt": ""}, "python", "python"},
		{map[string]string{"pyproject.toml": ""}, "python", "python"},
		{map[string]string{"go.mod": "module x"}, "go", "go"},
		{map[string]string{"Cargo.toml": ""}, "rust", "rust"},
		{map[string]string{"Gemfile": ""}, "ruby", "ruby"},
		{map[string]string{"thing.gemspec": ""}, "ruby", "ruby"},
		{map[string]string{"pom.xml": ""}, "java", "java"},
		{map[string]string{"Main.kt": ""}, "java", "java"},
		{map[string]string{"app.csproj": ""}, "dotnet", ""},
		{map[string]string{"run.sh": ""}, "shell", ""},
		// Upstream's order: node wins over python in a mixed project.
		{map[string]string{"requirements.txt": "", "package.json": ""}, "node", "node"},
		{map[string]string{"Procfile": "# web\nweb: bundle exec rails s\n"}, "ruby", "ruby"},
		{map[string]string{"Procfile": "web: gunicorn app\nworker: python3 w.py\n"}, "python", "python"},
	} {
		dir := t.TempDir()
		for n, content := range c.files {
			os.WriteFile(filepath.Join(dir, n), []byte(content), 0o644)
		}
		rt, ok := DetectProject(dir)
		if !ok || rt.Name != c.name || rt.Template != c.template {
			t.Errorf("%v: %+v %v, want %s (template %q)", c.files, rt, ok, c.name, c.template)
		}
	}
	if rt, ok := DetectProject(t.TempDir()); ok {
		t.Errorf("empty dir: %+v", rt)
	}
	if _, ok := DetectProject("/does/not/exist"); ok {
		t.Error("a missing dir was detected")
	}
	// A Procfile that is a FIFO or a directory is not read.
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "Procfile"), 0o755)
	if _, ok := DetectProject(dir); ok {
		t.Error("a Procfile directory was read")
	}
}

func TestProjectTemplate(t *testing.T) {
	dir := t.TempDir()
	if tpl := ProjectTemplate(dir); tpl.Name != "base" || tpl.Config.Image() != "" {
		t.Errorf("empty project: %+v", tpl)
	}
	os.WriteFile(filepath.Join(dir, "go.mod"), nil, 0o644)
	if tpl := ProjectTemplate(dir); tpl.Name != "go" || tpl.Config.Image() != "golang:1.23-alpine" {
		t.Errorf("go project: %+v", tpl)
	}
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "composer.json"), nil, 0o644)
	if tpl := ProjectTemplate(dir); tpl.Name != "base" || tpl.Config.Image() != "php:8.3-alpine" {
		t.Errorf("php project: %+v %q", tpl, tpl.Config.Image())
	}
	// The base template is not modified by a detection.
	if b, _ := Builtin("base"); b.Config.Image() != "" {
		t.Error("ProjectTemplate changed the built-in base template")
	}
}

func TestBuiltins(t *testing.T) {
	names := TemplateNames()
	for _, want := range []string{"python", "node", "go", "rust", "ruby", "java", "bash"} {
		tpl, ok := Builtin(want)
		if !ok {
			t.Errorf("no built-in %s (have %v)", want, names)
			continue
		}
		if tpl.Config.Image() == "" || !strings.Contains(tpl.Config.Sandbox.InitScript, "mkdir -p /workspace") {
			t.Errorf("%s: %+v", want, tpl.Config.Sandbox)
		}
		// Each is a valid file once rendered.
		if _, err := Parse(Render(tpl.Config, "")); err != nil {
			t.Errorf("%s: %v", want, err)
		}
	}
}

func TestTemplates(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "templates")
	ts := OpenTemplates(dir)
	list, err := ts.List()
	if err != nil || len(list) != len(Builtins()) {
		t.Fatalf("fresh list: %d %v", len(list), err)
	}
	doc := []byte("# my python with more memory\n[sandbox]\nbase_image = \"python:3.13\"\n[resources]\nmemory_mb = 4096\n")
	if err := ts.Save("py-big", doc, false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("templates dir: %v %v", fi.Mode(), err)
	}
	tpl, err := ts.Get("py-big")
	if err != nil || tpl.Builtin || tpl.Config.Image() != "python:3.13" || tpl.Description != "my python with more memory" {
		t.Fatalf("get: %+v %v", tpl, err)
	}
	if err := ts.Save("py-big", doc, false); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("save over an existing one without force: %v", err)
	}
	if err := ts.Save("py-big", []byte("[sandbox]\nbase_image = \"python:3.14\"\n"), true); err != nil {
		t.Errorf("save with force: %v", err)
	}
	if tpl, _ := ts.Get("py-big"); tpl.Config.Image() != "python:3.14" || tpl.Description != "saved; image python:3.14" {
		t.Errorf("after force: %+v", tpl)
	}
	for name, class := range map[string]error{"python": errdefs.ErrAlreadyExists, "Bad Name": errdefs.ErrInvalidArgument, "../x": errdefs.ErrInvalidArgument} {
		if err := ts.Save(name, doc, true); !errors.Is(err, class) {
			t.Errorf("save %q: %v, want %v", name, err, class)
		}
	}
	if err := ts.Save("bogus", []byte("[sandbox]\nbogus = 1\n"), false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("save of an invalid file: %v", err)
	}
	if err := ts.Save("withfiles", []byte(filesEntry("a")), false); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("save with files: %v", err)
	}
	// A file broken by hand is listed as unusable, not hidden.
	os.WriteFile(filepath.Join(dir, "broken.toml"), []byte("[nope]\n"), 0o600)
	list, err = ts.List()
	if err != nil || len(list) != len(Builtins())+2 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	if last := list[len(list)-1]; last.Name != "py-big" || list[len(list)-2].Name != "broken" || !strings.HasPrefix(list[len(list)-2].Description, "unusable") {
		t.Errorf("saved entries: %+v %+v", list[len(list)-2], last)
	}
	if err := ts.Remove("py-big"); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Get("py-big"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("get after remove: %v", err)
	}
	if err := ts.Remove("py-big"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	if err := ts.Remove("go"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("remove of a built-in: %v", err)
	}
}

func TestWriteFileAtomicReplacesSymlink(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	p := filepath.Join(dir, FileName)
	os.Symlink(victim, p)
	if err := WriteFileAtomic(p, []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	if fi, _ := os.Lstat(p); fi.Mode()&os.ModeSymlink != 0 {
		t.Error("the symlink is still there")
	}
}
