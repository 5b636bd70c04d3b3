package debootstrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func TestCheck(t *testing.T) {
	b := New(Options{AptDir: t.TempDir()})
	req, err := b.Check(Request{Suite: "bookworm", Packages: []string{"python3", "git", "python3", "g++"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(req.Packages, ",") != "g++,git,python3" || req.Mirror != DefaultMirror {
		t.Errorf("%+v", req)
	}
	if req, err := b.Check(Request{Suite: "trixie", Mirror: "https://mirror.example/debian/"}); err != nil || req.Mirror != "https://mirror.example/debian" {
		t.Errorf("mirror: %+v %v", req, err)
	}
	bad := []Request{
		{Suite: ""},
		{Suite: "Bookworm"},
		{Suite: "--help"},
		{Suite: "bookworm/../x"},
		{Suite: "bookworm", Packages: []string{"--no-check-gpg"}},
		{Suite: "bookworm", Packages: []string{"a,b"}},
		{Suite: "bookworm", Packages: []string{"x"}},
		{Suite: "bookworm", Packages: []string{"Python3"}},
		{Suite: "bookworm", Packages: []string{"p y"}},
		{Suite: "bookworm", Mirror: "file:///srv/debian"},
		{Suite: "bookworm", Mirror: "http://user:secret@mirror/debian"},
		{Suite: "bookworm", Mirror: "http://mirror/debian --no-check-gpg"},
		{Suite: "bookworm", Mirror: "http://mirror/debian?x=1"},
		{Suite: "bookworm", Mirror: "-x"},
		{Suite: "bookworm", Packages: make([]string, MaxPackages+1)},
	}
	for _, r := range bad {
		if _, err := b.Check(r); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%+v: %v, want ErrInvalidArgument", r, err)
		}
	}
}

func TestCacheKey(t *testing.T) {
	b := New(Options{AptDir: t.TempDir()})
	k := func(pkgs ...string) string {
		req, err := b.Check(Request{Suite: "bookworm", Packages: pkgs})
		if err != nil {
			t.Fatal(err)
		}
		return b.cacheKey(req)
	}
	if k("git", "python3") != k("python3", "git", "git") {
		t.Error("the key depends on the order of the packages")
	}
	if k("git") == k("python3") || k() == k("git") {
		t.Error("different package sets share a key")
	}
	other := New(Options{AptDir: t.TempDir(), Arch: "arm64"})
	if r, _ := other.Check(Request{Suite: "bookworm"}); other.cacheKey(r) == k() {
		t.Error("the key does not depend on the architecture")
	}
}

func TestHostMirror(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
	if m := HostMirror(dir); m != DefaultMirror {
		t.Errorf("no sources: %s", m)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sources.list.d/zz.sources", `# a comment
Types: deb-src
URIs: http://src.example/debian

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm

Types: deb
URIs: http://snapshot.example/other http://mirror.example/debian/
Suites: bookworm bookworm-updates
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 URIs: http://inside-key.example/debian
`)
	if m := HostMirror(dir); m != "http://mirror.example/debian" {
		t.Errorf("deb822: %s", m)
	}
	write("sources.list.d/aa.list", "deb [arch=amd64 signed-by=/k.gpg] https://packages.example/apt stable main\ndeb https://fast.example/debian/ bookworm main\n")
	if m := HostMirror(dir); m != "https://fast.example/debian" {
		t.Errorf("one-line with options: %s", m)
	}
	write("sources.list", "# deb http://commented.example/debian bookworm main\ndeb http://first.example/debian bookworm main contrib\n")
	if m := HostMirror(dir); m != "http://first.example/debian" {
		t.Errorf("sources.list first: %s", m)
	}
}

func TestProgressAndClassify(t *testing.T) {
	for line, want := range map[string]string{
		"I: Retrieving libc6 2.36-9": "Retrieving libc6 2.36-9",
		"W: Cannot check Release":    "warning: Cannot check Release",
		"I: Validating libc6":        "",
		"random noise":               "",
	} {
		got, ok := progressLine(line)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v", line, got, ok)
		}
	}
	for lines, class := range map[string]error{
		"I: x\nE: Couldn't find these debs: nope":                        errdefs.ErrNotFound,
		"E: No such script: /usr/share/debootstrap/scripts/narnia":       errdefs.ErrNotFound,
		"E: Failed getting release file http://x/debian/dists/b/Release": errdefs.ErrUnavailable,
	} {
		err := classify(errors.New("exit status 1"), strings.Split(lines, "\n"))
		if !errors.Is(err, class) || !strings.Contains(err.Error(), strings.TrimPrefix(strings.Split(lines, "\n")[len(strings.Split(lines, "\n"))-1], "E: ")) {
			t.Errorf("%q: %v", lines, err)
		}
	}
	var tl tail
	for i := 0; i < 3*tailLines; i++ {
		tl.add(strings.Repeat("x", i))
	}
	if l := tl.lines(); len(l) != tailLines || len(l[tailLines-1]) != 3*tailLines-1 {
		t.Errorf("tail: %d lines", len(l))
	}
	var got []string
	readLines(strings.NewReader("a\n"+strings.Repeat("y", 3*maxLine)+"\nb\nc"), func(s string) { got = append(got, s) })
	if len(got) != 4 || got[0] != "a" || len(got[1]) > maxLine || got[2] != "b" || got[3] != "c" {
		t.Errorf("readLines: %d lines %q", len(got), got[0])
	}
}

// fakeDebootstrap is a real program standing in for debootstrap in the
// tests of the cache and the process handling: it logs its arguments,
// makes the tarball or the target as asked, and can be told to hang.
const fakeDebootstrap = `#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
for a in "$@"; do
  case "$a" in
  --make-tarball=*) out="${a#--make-tarball=}" ;;
  --unpack-tarball=*) in="${a#--unpack-tarball=}" ;;
  esac
done
eval "target=\${$(($# - 1))}"
echo "I: Retrieving base-files 12"
echo "I: Validating base-files 12"
if [ -e "$(dirname "$0")/hang" ]; then
  sleep 300 &
  echo $! > "$(dirname "$0")/child"
  sleep 300
fi
if [ -n "$out" ]; then echo packages > "$out"; exit 0; fi
[ "$(cat "$in")" = packages ] || { echo "E: bad tarball"; exit 1; }
mkdir -p "$target/etc" "$target/var/cache/apt/archives" "$target/var/log"
echo "nameserver 10.0.0.1" > "$target/etc/resolv.conf"
echo buildhost > "$target/etc/hostname"
echo abc > "$target/etc/machine-id"
touch "$target/var/cache/apt/archives/x.deb" "$target/var/log/bootstrap.log" "$target/etc/os-release"
echo "I: Base system installed successfully."
`

func fakeBuilder(t *testing.T) (*Builder, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("builds need root")
	}
	bin := t.TempDir()
	prog := filepath.Join(bin, "debootstrap")
	if err := os.WriteFile(prog, []byte(fakeDebootstrap), 0o755); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(bin, "keyring.gpg")
	os.WriteFile(keyring, nil, 0o644)
	return New(Options{Program: prog, Keyring: keyring, CacheDir: filepath.Join(t.TempDir(), "cache"), AptDir: bin}), bin
}

func calls(bin string) []string {
	b, _ := os.ReadFile(filepath.Join(bin, "calls"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestBuildCachesDownloads(t *testing.T) {
	b, bin := fakeBuilder(t)
	req, err := b.Check(Request{Suite: "bookworm", Packages: []string{"python3"}})
	if err != nil {
		t.Fatal(err)
	}
	build := func(r Request) []Progress {
		t.Helper()
		var mu sync.Mutex
		var ps []Progress
		target := filepath.Join(t.TempDir(), "rootfs")
		if err := b.Build(context.Background(), r, target, func(p Progress) { mu.Lock(); ps = append(ps, p); mu.Unlock() }); err != nil {
			t.Fatal(err)
		}
		for _, gone := range []string{"etc/resolv.conf", "etc/hostname", "var/cache/apt/archives/x.deb", "var/log/bootstrap.log"} {
			if _, err := os.Lstat(filepath.Join(target, gone)); err == nil {
				t.Errorf("%s was not scrubbed", gone)
			}
		}
		if fi, err := os.Stat(filepath.Join(target, "etc/machine-id")); err != nil || fi.Size() != 0 {
			t.Errorf("machine-id not emptied: %v", err)
		}
		return ps
	}
	ps := build(req)
	c := calls(bin)
	if len(c) != 2 || !strings.Contains(c[0], "--make-tarball=") || !strings.Contains(c[1], "--unpack-tarball=") ||
		!strings.Contains(c[0], "--include=python3") || !strings.Contains(c[0], "--force-check-gpg") || !strings.HasSuffix(c[0], DefaultMirror) {
		t.Fatalf("calls: %q", c)
	}
	var sawRetrieving, sawValidating bool
	for _, p := range ps {
		sawRetrieving = sawRetrieving || p.Message == "Retrieving base-files 12"
		sawValidating = sawValidating || strings.Contains(p.Message, "Validating")
	}
	if !sawRetrieving || sawValidating {
		t.Errorf("progress: %+v", ps)
	}

	build(req)
	if c := calls(bin); len(c) != 3 || !strings.Contains(c[2], "--unpack-tarball=") {
		t.Errorf("the second build downloaded again: %q", c)
	}
	req.NoCache = true
	build(req)
	if c := calls(bin); len(c) != 5 || !strings.Contains(c[3], "--make-tarball=") {
		t.Errorf("NoCache did not download: %q", c)
	}
	// A stale download is fetched again.
	req.NoCache = false
	old := time.Now().Add(-2 * DefaultMaxAge)
	os.Chtimes(filepath.Join(b.opts.CacheDir, b.cacheKey(req)+".tgz"), old, old)
	build(req)
	if c := calls(bin); len(c) != 7 {
		t.Errorf("a stale download was used: %q", c)
	}
	entries, _ := os.ReadDir(b.opts.CacheDir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left in the cache: %s", e.Name())
		}
	}
}

// TestBuildCancel: cancelling a build kills debootstrap and everything it
// started, and returns promptly.
func TestBuildCancel(t *testing.T) {
	b, bin := fakeBuilder(t)
	os.WriteFile(filepath.Join(bin, "hang"), nil, 0o644)
	req, _ := b.Check(Request{Suite: "bookworm"})
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- b.Build(ctx, req, filepath.Join(t.TempDir(), "rootfs"), func(p Progress) {
			if strings.HasPrefix(p.Message, "Retrieving") {
				select {
				case started <- struct{}{}:
				default:
				}
			}
		})
	}()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the fake debootstrap did not start")
	}
	time.Sleep(200 * time.Millisecond) // let it start its child
	begin := time.Now()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v, want context.Canceled", err)
		}
	case <-time.After(stopGrace + drainGrace + 5*time.Second):
		t.Fatal("Build did not return after cancel")
	}
	if d := time.Since(begin); d > stopGrace+drainGrace+time.Second {
		t.Errorf("cancel took %v", d)
	}
	pidb, err := os.ReadFile(filepath.Join(bin, "child"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidb)))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for syscall.Kill(pid, 0) == nil && !zombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("debootstrap's child %d survived the cancel", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func zombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestBuildFailureIsClassified(t *testing.T) {
	b, _ := fakeBuilder(t)
	req, _ := b.Check(Request{Suite: "bookworm"})
	// A corrupt cached tarball makes the fake fail the install.
	os.MkdirAll(b.opts.CacheDir, 0o700)
	os.WriteFile(filepath.Join(b.opts.CacheDir, b.cacheKey(req)+".tgz"), []byte("garbage"), 0o600)
	err := b.Build(context.Background(), req, filepath.Join(t.TempDir(), "rootfs"), nil)
	if err == nil || !strings.Contains(err.Error(), "bad tarball") {
		t.Errorf("err %v, want debootstrap's E: line", err)
	}
	target := filepath.Join(t.TempDir(), "exists")
	os.Mkdir(target, 0o755)
	if err := b.Build(context.Background(), req, target, nil); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("existing target: %v", err)
	}
	b.opts.Keyring = "/nonexistent.gpg"
	if err := b.Build(context.Background(), req, filepath.Join(t.TempDir(), "r"), nil); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("missing keyring: %v", err)
	}
}

func TestScrubStaysInside(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	victim := filepath.Join(outside, "resolv.conf")
	os.WriteFile(victim, []byte("keep"), 0o644)
	os.Symlink(outside, filepath.Join(root, "etc"))
	os.MkdirAll(filepath.Join(root, "var/cache/apt"), 0o755)
	os.Symlink(outside, filepath.Join(root, "var/cache/apt/archives"))
	os.WriteFile(filepath.Join(outside, "a.deb"), nil, 0o644)
	if err := scrub(root); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{victim, filepath.Join(outside, "a.deb")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("scrub followed a symlink out of the root and removed %s", p)
		}
	}
}

// FuzzHostMirror: whatever the apt sources say, the mirror chosen is
// DefaultMirror or a URL that passes checkMirror.
func FuzzHostMirror(f *testing.F) {
	f.Add("deb http://a.example/debian bookworm main\n", "Types: deb\nURIs: https://b.example/debian/\n")
	f.Add("deb [trusted=yes] http://x/debian b main", "Types: deb deb-src\nEnabled: yes\nURIs: http://u:p@c/debian\n")
	f.Fuzz(func(t *testing.T, list, sources string) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
		os.WriteFile(filepath.Join(dir, "sources.list"), []byte(list), 0o644)
		os.WriteFile(filepath.Join(dir, "sources.list.d", "x.sources"), []byte(sources), 0o644)
		m := HostMirror(dir)
		if m != DefaultMirror && (checkMirror(m) != nil || !strings.HasSuffix(m, "/debian")) {
			t.Fatalf("chose %q", m)
		}
	})
}
