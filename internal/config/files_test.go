package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// project writes files (name → content; a content starting with "->" makes
// a symlink to the rest) and an agentkernel.toml with body under a new
// directory, and loads it.
func project(t *testing.T, files map[string]string, body string) *Config {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func filesEntry(src string) string {
	return "[[files]]\nsource = " + quote(src) + "\ndest = \"/app/x\"\n"
}

func TestResolveFiles(t *testing.T) {
	c := project(t, map[string]string{".env": "A=1\n", "conf/s.json": "{}", "link": "->conf/s.json"},
		filesEntry(".env")+filesEntry("conf/s.json")+filesEntry("link")+"[[files]]\nsource = \"conf/../.env\"\ndest = \"/b\"\nmode = \"0600\"\n")
	cps, err := c.ResolveFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 4 || cps[0].Size != 4 || cps[3].Mode != 0o600 || cps[0].Mode != 0o644 {
		t.Fatalf("%+v", cps)
	}
	if filepath.Base(cps[2].Source) != "s.json" {
		t.Errorf("the symlink was not resolved: %s", cps[2].Source)
	}
	f, err := cps[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "A=1\n" {
		t.Errorf("content %q", b)
	}
}

// TestResolveFilesStaysInside: a config cannot copy anything outside its
// own directory into a sandbox, however it names it.
func TestResolveFilesStaysInside(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "id_rsa")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		files map[string]string
		src   string
		class error
	}{
		{nil, secret, errdefs.ErrPermissionDenied},
		{nil, "../" + filepath.Base(outside) + "/id_rsa", errdefs.ErrPermissionDenied},
		{map[string]string{"key": "->" + secret}, "key", errdefs.ErrPermissionDenied},
		{map[string]string{"d/key": "->../../" + filepath.Base(outside) + "/id_rsa"}, "d/key", errdefs.ErrPermissionDenied},
		{map[string]string{"etc": "->/etc"}, "etc/passwd", errdefs.ErrPermissionDenied},
		{map[string]string{"sub/a": "x"}, "sub", errdefs.ErrInvalidArgument},
		{nil, "missing", errdefs.ErrNotFound},
		{map[string]string{"dangling": "->nowhere"}, "dangling", errdefs.ErrNotFound},
	} {
		cfg := project(t, c.files, filesEntry(c.src))
		_, err := cfg.ResolveFiles()
		if !errors.Is(err, c.class) {
			t.Errorf("source %q: %v, want %v", c.src, err, c.class)
		}
	}
}

func TestResolveFilesBounds(t *testing.T) {
	c := project(t, nil, filesEntry("big"))
	big := filepath.Join(c.Dir, "big")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxCopyBytes+1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ResolveFiles(); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Errorf("a file over the bound: %v", err)
	}
	// Many files under the per-file bound that add up to more than the total.
	var body strings.Builder
	for i := 0; i < MaxTotalCopy/MaxCopyBytes+1; i++ {
		body.WriteString(filesEntry("med"))
	}
	c = project(t, nil, body.String())
	med := filepath.Join(c.Dir, "med")
	os.WriteFile(med, nil, 0o644)
	os.Truncate(med, MaxCopyBytes)
	if _, err := c.ResolveFiles(); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Errorf("files over the total bound: %v", err)
	}

	// A template has no directory: files are refused.
	tpl, err := Parse([]byte(filesEntry("a")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.ResolveFiles(); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("files without a directory: %v", err)
	}
}

func TestLoadBounds(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, FileName)
	if err := os.WriteFile(p, []byte("# "+strings.Repeat("x", MaxFileBytes)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Errorf("oversized file: %v", err)
	}
	if _, err := Load(dir); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("a directory: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "nope.toml")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a missing file: %v", err)
	}
	os.WriteFile(p, []byte("[sandbox]\nbogus = 1\n"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("the error does not name the file and line: %v", err)
	}
}
