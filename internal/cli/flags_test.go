package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	good := []string{"A=1", "B=", "C=x=y", "LONG_NAME=with spaces"}
	if got, err := parseEnv(good); err != nil || !reflect.DeepEqual(got, good) {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"A", "=1", "A B=1", "A=\x00", ""} {
		if _, err := parseEnv([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseLabels(t *testing.T) {
	got, err := parseLabels([]string{"a=1", "b=", "c=x=y"})
	if err != nil || !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "", "c": "x=y"}) {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := parseLabels(nil); got != nil || err != nil {
		t.Fatalf("nil: %v %v", got, err)
	}
	for _, bad := range [][]string{{"a"}, {"=1"}, {"a=1", "a=2"}} {
		if _, err := parseLabels(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseDirs(t *testing.T) {
	wd, _ := os.Getwd()
	got, err := parseDirs([]string{"src", "/abs:/work", "rel/x:/data:ro", "/a::rw"})
	want := []string{filepath.Join(wd, "src"), "/abs:/work", filepath.Join(wd, "rel/x") + ":/data:ro", "/a::rw"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q %v, want %q", got, err, want)
	}
	for _, bad := range []string{"", ":/x", "a:b", "a:/b:rx", "a:/b:ro:x"} {
		if _, err := parseDirs([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, good := range []string{"", "30s", "10m", "2h", "1h30m", "1d", "365d"} {
		if got, err := parseDuration("--ttl", good); err != nil || got != good {
			t.Errorf("%q: %q %v", good, got, err)
		}
	}
	for _, bad := range []string{"0", "0s", "-1h", "soon", "1x", "0d", "366d", "d", "1.5d", "10"} {
		if _, err := parseDuration("--ttl", bad); err == nil || !strings.Contains(err.Error(), "--ttl") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		dash int
		name string
		cmd  []string
		ok   bool
	}{
		{[]string{"dev", "ls", "-la"}, 1, "dev", []string{"ls", "-la"}, true},
		{[]string{"dev", "ls"}, -1, "dev", []string{"ls"}, true},
		{[]string{"dev"}, -1, "", nil, false},
		{[]string{"dev"}, 1, "", nil, false},
		{[]string{"ls"}, 0, "", nil, false},
		{[]string{"a", "b", "c"}, 2, "", nil, false},
		{nil, -1, "", nil, false},
	} {
		name, cmd, err := splitCommand(tc.args, tc.dash)
		if (err == nil) != tc.ok || name != tc.name || !reflect.DeepEqual(cmd, tc.cmd) {
			t.Errorf("%q dash %d: %q %q %v", tc.args, tc.dash, name, cmd, err)
		}
	}
}

func TestParseCpPath(t *testing.T) {
	for _, tc := range []struct {
		in      string
		sandbox string
		path    string
	}{
		{"dev:/tmp/x", "dev", "/tmp/x"},
		{"dev.1_a-b:/", "dev.1_a-b", "/"},
		{"./dev:/x", "", "./dev:/x"},
		{"/abs/a:b", "", "/abs/a:b"},
		{"dir/a:/b", "", "dir/a:/b"},
		{"file.txt", "", "file.txt"},
		{"-", "", "-"},
		{".hidden:/x", "", ".hidden:/x"},
	} {
		got, err := parseCpPath(tc.in)
		if err != nil || got.Sandbox != tc.sandbox || got.Path != tc.path {
			t.Errorf("%q: %+v %v", tc.in, got, err)
		}
	}
	for _, bad := range []string{"", "dev:", "dev:relative", "bad name:/x", "dev:/a/../b", "-x:/a", "dev:/a\x00"} {
		if got, err := parseCpPath(bad); err == nil {
			t.Errorf("%q accepted: %+v", bad, got)
		}
	}
	p, _ := parseCpPath("dev:/a/b/")
	if !p.dirOnly() || p.clean() != "/a/b" || p.contents() {
		t.Errorf("dev:/a/b/: %v %v %v", p.dirOnly(), p.clean(), p.contents())
	}
	p, _ = parseCpPath("dev:/a/.")
	if !p.contents() {
		t.Error("dev:/a/. is not contents")
	}
	for _, tc := range [][2]string{{"a", "b"}, {"a:/x", "b:/y"}, {"a:/x/.", "."}, {".", "a:/x/."}} {
		if _, _, err := parseCpArgs(tc[0], tc[1]); err == nil {
			t.Errorf("cp %q %q accepted", tc[0], tc[1])
		}
	}
	if s, d, err := parseCpArgs("./x/.", "dev:/y"); err != nil || s.remote() || !d.remote() {
		t.Errorf("cp ./x/. dev:/y: %v %v %v", s, d, err)
	}
}

// FuzzParseCpPath: never panics; a sandbox path is absolute, has a valid
// name and no "..".
func FuzzParseCpPath(f *testing.F) {
	for _, s := range []string{"dev:/x", "./a:b", "a:b:c", "dev:/../x", ":", "-", "a:/", "é:/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseCpPath(s)
		if err != nil || !p.remote() {
			return
		}
		if !sandboxNameRE.MatchString(p.Sandbox) || !strings.HasPrefix(p.Path, "/") || strings.Contains("/"+p.Path+"/", "/../") {
			t.Fatalf("%q parsed to %+v", s, p)
		}
		if p.Sandbox+":"+p.Path != s {
			t.Fatalf("%q parsed to %+v", s, p)
		}
	})
}

// FuzzParseFlags: the flag parsers never panic, and what they accept has
// the shape the daemon expects.
func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{"A=1", "=", "a:/b:ro", "1d", "30s", "a=b=c", "::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if env, err := parseEnv([]string{s}); err == nil {
			k, _, ok := strings.Cut(env[0], "=")
			if !ok || k == "" || strings.ContainsRune(s, 0) {
				t.Fatalf("env %q accepted", s)
			}
		}
		if l, err := parseLabels([]string{s}); err == nil && len(l) != 1 {
			t.Fatalf("label %q gave %v", s, l)
		}
		if d, err := parseDirs([]string{s}); err == nil && !filepath.IsAbs(strings.Split(d[0], ":")[0]) {
			t.Fatalf("dir %q gave %q", s, d)
		}
		parseDuration("--ttl", s)
	})
}
