package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Template is a named config that `init` writes and `create --template`
// applies.
type Template struct {
	Name        string
	Description string
	// Builtin templates are part of agentkernel; the others are files
	// under the templates directory.
	Builtin bool
	Config  *Config
}

// builtin describes one built-in template.
type builtin struct {
	name, desc, image string
	vcpus, memoryMB   int64
	// check runs in the sandbox after create: it makes /workspace and
	// fails early, with a clear message, if the toolchain is missing.
	check string
}

var builtins = []builtin{
	{"base", "the daemon's default image (host), no setup", "", 0, 0, ""},
	{"bash", "Bash on Alpine", "bash:5.2", 1, 256, "bash --version | head -n 1"},
	{"go", "Go toolchain", "golang:1.23-alpine", 2, 1024, "go version"},
	{"java", "Java 21 (Eclipse Temurin)", "eclipse-temurin:21-alpine", 2, 1024, "java -version"},
	{"node", "Node.js 22 with npm", "node:22-alpine", 1, 512, "node --version && npm --version"},
	{"python", "Python 3.12 with pip", "python:3.12-alpine", 1, 512, "python3 --version && python3 -m pip --version"},
	{"ruby", "Ruby 3.3 with Bundler", "ruby:3.3-alpine", 1, 512, "ruby --version && bundle --version"},
	{"rust", "Rust toolchain with cargo", "rust:1.85-alpine", 2, 2048, "cargo --version"},
	// The AI coding agents (internal/agents): `create --template claude`
	// is `create --agent claude` (image, network preset, API key).
	{"claude", "Claude Code (agentkernel setup --agents claude)", "agentkernel/claude", 2, 2048, ""},
	{"codex", "Codex CLI (agentkernel setup --agents codex)", "agentkernel/codex", 2, 2048, ""},
	{"gemini", "Gemini CLI (agentkernel setup --agents gemini)", "agentkernel/gemini", 2, 2048, ""},
	{"opencode", "OpenCode (agentkernel setup --agents opencode)", "agentkernel/opencode", 2, 2048, ""},
	{"opencode-sandbox", "OpenCode for opencode attach through serve's /opencode route", "agentkernel/opencode", 2, 2048, ""},
}

// TemplateAgent returns the AI coding agent a built-in template is for
// ("opencode-sandbox" is OpenCode's), or "" for the others.
func TemplateAgent(name string) string {
	switch name {
	case "claude", "codex", "gemini", "opencode":
		return name
	case "opencode-sandbox":
		return "opencode"
	}
	return ""
}

func (b builtin) template() Template {
	c := &Config{}
	c.Sandbox.BaseImage = b.image
	c.Security.Profile = "moderate"
	if b.vcpus > 0 {
		v, m := b.vcpus, b.memoryMB
		c.Resources.VCPUs, c.Resources.MemoryMB = &v, &m
	}
	if b.check != "" {
		c.Sandbox.InitScript = "set -e\nmkdir -p /workspace\n" + b.check + "\n"
	}
	return Template{Name: b.name, Description: b.desc, Builtin: true, Config: c}
}

// Builtin returns the built-in template called name.
func Builtin(name string) (Template, bool) {
	for _, b := range builtins {
		if b.name == name {
			return b.template(), true
		}
	}
	return Template{}, false
}

// Builtins returns every built-in template, by name.
func Builtins() []Template {
	out := make([]Template, len(builtins))
	for i, b := range builtins {
		out[i] = b.template()
	}
	return out
}

// Templates is the directory of saved templates, NAME.toml each. It is
// created (0700) by the first Save. Methods are safe for concurrent use;
// a Save races a Remove of the same name like two shell commands would.
type Templates struct {
	dir string
}

// OpenTemplates returns the saved templates under dir (which need not
// exist yet).
func OpenTemplates(dir string) *Templates { return &Templates{dir: dir} }

var templateNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidateTemplateName checks a template name: 1-63 lowercase letters,
// digits, '_' or '-'.
func ValidateTemplateName(name string) error {
	if !templateNameRE.MatchString(name) {
		return fmt.Errorf("%w: template name %q: use 1-63 lowercase letters, digits, '_' or '-'", errdefs.ErrInvalidArgument, name)
	}
	return nil
}

func (t *Templates) path(name string) string { return filepath.Join(t.dir, name+".toml") }

// Get returns the template called name: a built-in, else a saved one.
func (t *Templates) Get(name string) (Template, error) {
	if b, ok := Builtin(name); ok {
		return b, nil
	}
	if err := ValidateTemplateName(name); err != nil {
		return Template{}, err
	}
	c, err := Load(t.path(name))
	if errors.Is(err, errdefs.ErrNotFound) {
		return Template{}, fmt.Errorf("%w: no template %q (see agentkernel template list)", errdefs.ErrNotFound, name)
	}
	if err != nil {
		return Template{}, fmt.Errorf("template %s: %w", name, err)
	}
	c.Dir = ""
	return Template{Name: name, Description: describe(t.path(name), c), Config: c}, nil
}

// List returns the built-in templates, then the saved ones, each by name.
// A saved file that no longer parses is listed with the reason as its
// description.
func (t *Templates) List() ([]Template, error) {
	out := Builtins()
	entries, err := os.ReadDir(t.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".toml")
		if !ok || !e.Type().IsRegular() || ValidateTemplateName(name) != nil {
			continue
		}
		if _, builtin := Builtin(name); builtin {
			continue
		}
		tpl, err := t.Get(name)
		if err != nil {
			tpl = Template{Name: name, Description: "unusable: " + firstLine(err.Error())}
		}
		out = append(out, tpl)
	}
	return out, nil
}

// Save stores data, an agentkernel.toml, as the template called name. The
// file must parse and must not have [[files]] (a template has no
// directory for them to be relative to). An existing saved template is
// replaced only with force; a built-in name is refused.
func (t *Templates) Save(name string, data []byte, force bool) error {
	if err := ValidateTemplateName(name); err != nil {
		return err
	}
	if _, ok := Builtin(name); ok {
		return fmt.Errorf("%w: %q is a built-in template; choose another name", errdefs.ErrAlreadyExists, name)
	}
	c, err := Parse(data)
	if err != nil {
		return err
	}
	if len(c.Files) > 0 {
		return fmt.Errorf("%w: a template cannot carry [[files]]: their sources would have no directory to be relative to", errdefs.ErrInvalidArgument)
	}
	if err := os.MkdirAll(t.dir, 0o700); err != nil {
		return err
	}
	if _, err := os.Lstat(t.path(name)); err == nil && !force {
		return fmt.Errorf("%w: template %q (use --force to replace it)", errdefs.ErrAlreadyExists, name)
	}
	return WriteFileAtomic(t.path(name), data, 0o600)
}

// Remove deletes the saved template called name.
func (t *Templates) Remove(name string) error {
	if _, ok := Builtin(name); ok {
		return fmt.Errorf("%w: %q is a built-in template", errdefs.ErrFailedPrecondition, name)
	}
	if err := ValidateTemplateName(name); err != nil {
		return err
	}
	if err := os.Remove(t.path(name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: no saved template %q", errdefs.ErrNotFound, name)
		}
		return err
	}
	return nil
}

// describe is a saved template's description: its first comment line, or
// its image.
func describe(path string, c *Config) string {
	if b, err := os.ReadFile(path); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if d, ok := strings.CutPrefix(line, "#"); ok && strings.TrimSpace(d) != "" {
				return strings.TrimSpace(d)
			}
			if line != "" {
				break
			}
		}
	}
	if img := c.Image(); img != "" {
		return "saved; image " + img
	}
	return "saved"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so that a reader sees the old or the new file
// and a symlink at path is replaced, never followed.
func WriteFileAtomic(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err = f.Write(data); err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}

// TemplateNames lists the built-in templates' names, for help texts.
func TemplateNames() []string {
	names := make([]string, len(builtins))
	for i, b := range builtins {
		names[i] = b.name
	}
	slices.Sort(names)
	return names
}
