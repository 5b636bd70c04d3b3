package config

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Runtime is a language toolchain and the image upstream agentkernel picks
// for it.
type Runtime struct {
	// Name is the runtime's short name ("python"); Template is the
	// built-in template for it, or "" when there is none.
	Name, Template string
	Image          string
}

// runtimes is upstream's detection table, in its order of precedence:
// project files and commands of each language, and the image for it.
var runtimes = []struct {
	Runtime
	files    []string // exact names, or "*suffix"
	commands []string
}{
	{Runtime{"node", "node", "node:22-alpine"},
		[]string{"package.json", "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb"},
		[]string{"node", "npm", "npx", "yarn", "pnpm", "bun", "tsx", "ts-node"}},
	{Runtime{"rust", "rust", "rust:1.85-alpine"},
		[]string{"Cargo.toml", "Cargo.lock"},
		[]string{"cargo", "rustc", "rustup", "rustfmt", "clippy"}},
	{Runtime{"go", "go", "golang:1.23-alpine"},
		[]string{"go.mod", "go.sum"},
		[]string{"go", "gofmt"}},
	{Runtime{"python", "python", "python:3.12-alpine"},
		[]string{"pyproject.toml", "requirements.txt", "setup.py", "setup.cfg", "Pipfile", "poetry.lock", "uv.lock"},
		[]string{"python", "python3", "pip", "pip3", "poetry", "uv", "pytest", "ruff"}},
	{Runtime{"ruby", "ruby", "ruby:3.3-alpine"},
		[]string{"Gemfile", "Gemfile.lock", "*.gemspec"},
		[]string{"ruby", "gem", "bundle", "bundler", "rake", "rails"}},
	{Runtime{"java", "java", "eclipse-temurin:21-alpine"},
		[]string{"pom.xml", "build.gradle", "build.gradle.kts", "settings.gradle"},
		[]string{"java", "javac", "mvn", "gradle", "gradlew"}},
	{Runtime{"java", "java", "eclipse-temurin:21-alpine"}, []string{"*.kt"}, nil},
	{Runtime{"dotnet", "", "mcr.microsoft.com/dotnet/sdk:8.0"},
		[]string{"*.csproj", "*.fsproj", "*.sln", "global.json"},
		[]string{"dotnet", "csc", "fsc"}},
	{Runtime{"c", "", "gcc:14-bookworm"},
		[]string{"Makefile", "CMakeLists.txt", "configure", "*.c", "*.cpp", "*.h"},
		[]string{"gcc", "g++", "clang", "clang++", "make", "cmake", "cc"}},
	{Runtime{"php", "", "php:8.3-alpine"},
		[]string{"composer.json", "composer.lock", "*.php"},
		[]string{"php", "composer"}},
	{Runtime{"elixir", "", "elixir:1.16-alpine"},
		[]string{"mix.exs", "mix.lock"},
		[]string{"elixir", "mix", "iex"}},
	{Runtime{"shell", "", "alpine:3.20"},
		[]string{"*.sh"},
		[]string{"sh", "bash", "zsh", "ash"}},
	{Runtime{"lua", "", "nickblah/lua:5.4-alpine"},
		[]string{"*.lua", ".luacheckrc"},
		[]string{"lua", "luajit", "luarocks"}},
	{Runtime{"terraform", "", "hashicorp/terraform:1.10"},
		[]string{"*.tf", "*.tfvars", "terraform.tfstate"},
		[]string{"terraform"}},
}

// runtimeImages is upstream's [sandbox] runtime shorthand. "base" is the
// daemon's default image here (upstream: alpine:3.20), written as "".
var runtimeImages = map[string]string{
	"base":   "",
	"python": "python:3.12-alpine",
	"node":   "node:22-alpine",
	"go":     "golang:1.23-alpine",
	"rust":   "rust:1.85-alpine",
	"ruby":   "ruby:3.3-alpine",
	"java":   "eclipse-temurin:21-alpine",
	"c":      "gcc:14-bookworm",
	"dotnet": "mcr.microsoft.com/dotnet/sdk:8.0",
}

func runtimeNames() []string {
	names := make([]string, 0, len(runtimeImages))
	for n := range runtimeImages {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// DetectCommand returns the runtime of a command's program (its base
// name: "/usr/bin/python3" is python).
func DetectCommand(argv []string) (Runtime, bool) {
	if len(argv) == 0 {
		return Runtime{}, false
	}
	prog := filepath.Base(argv[0])
	for _, rt := range runtimes {
		if slices.Contains(rt.commands, prog) {
			return rt.Runtime, true
		}
	}
	return Runtime{}, false
}

// Bounds on what DetectProject reads.
const (
	maxDirEntries = 10000
	maxProcfile   = 64 << 10
)

// DetectProject returns the runtime of the project in dir from its files,
// then from the first command of its Procfile, as upstream does. It reads
// at most maxDirEntries names and the first 64 KiB of the Procfile, and
// never follows a Procfile that is not a regular file.
func DetectProject(dir string) (Runtime, bool) {
	names := readNames(dir)
	for _, rt := range runtimes {
		for _, pat := range rt.files {
			if suffix, ok := strings.CutPrefix(pat, "*"); ok {
				for n := range names {
					if strings.HasSuffix(n, suffix) {
						return rt.Runtime, true
					}
				}
			} else if names[pat] {
				return rt.Runtime, true
			}
		}
	}
	return detectProcfile(filepath.Join(dir, "Procfile"))
}

func readNames(dir string) map[string]bool {
	names := map[string]bool{}
	d, err := os.Open(dir)
	if err != nil {
		return names
	}
	defer d.Close()
	list, _ := d.Readdirnames(maxDirEntries)
	for _, n := range list {
		names[n] = true
	}
	return names
}

func detectProcfile(p string) (Runtime, bool) {
	f, err := os.Open(p)
	if err != nil {
		return Runtime{}, false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return Runtime{}, false
	}
	sc := bufio.NewScanner(io.LimitReader(f, maxProcfile))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		_, command, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if rt, ok := DetectCommand(strings.Fields(command)); ok {
			return rt, true
		}
	}
	return Runtime{}, false
}

// ProjectTemplate is the template `init` uses for the project in dir: the
// built-in template of its detected runtime, or the base template with the
// detected image, or the base template when nothing is detected.
func ProjectTemplate(dir string) Template {
	base, _ := Builtin("base")
	rt, ok := DetectProject(dir)
	if !ok {
		return base
	}
	if t, ok := Builtin(rt.Template); ok && rt.Template != "" {
		return t
	}
	base.Description = rt.Name + " project"
	base.Config.Sandbox.BaseImage = rt.Image
	return base
}
