package mcp

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/api"
)

func TestNetworkNarrows(t *testing.T) {
	f := newFake()
	cs, _ := connect(t, f, Policy{AllowedDomains: []string{"PyPI.org.", "*.example.com"}})
	res := call(t, cs, "sandbox_run", map[string]any{"command": "true", "allow": []string{"evil.com"}}, nil)
	if !res.IsError || !strings.Contains(errText(res), `domain "evil.com" is not allowed: this MCP server allows pypi.org, *.example.com`) {
		t.Errorf("allow evil.com: %v %q", res.IsError, errText(res))
	}
	res = call(t, cs, "sandbox_create", map[string]any{"name": "x", "allow": []string{"example.com"}}, nil)
	if !res.IsError || f.creates != 0 {
		t.Errorf("allow example.com under *.example.com only: error %v, creates %d", res.IsError, f.creates)
	}
	if len(f.runs) != 0 {
		t.Fatalf("a refused run ran: %+v", f.runs)
	}
	call(t, cs, "sandbox_run", map[string]any{"command": "true", "allow": []string{"a.example.com", "pypi.org"}}, nil)
	call(t, cs, "sandbox_run", map[string]any{"command": "true"}, nil)
	call(t, cs, "sandbox_run", map[string]any{"command": "true", "allow": []string{}}, nil)
	want := []*api.NetworkPolicy{
		{Profile: "restrictive", Allow: []string{"a.example.com", "pypi.org"}},
		{Profile: "restrictive", Allow: []string{"pypi.org", "*.example.com"}},
		{Profile: "restrictive", Allow: []string{}},
	}
	for i, w := range want {
		if i >= len(f.runs) || !reflect.DeepEqual(f.runs[i].Network, w) {
			t.Errorf("run %d network %+v, want %+v", i, f.runs[min(i, len(f.runs)-1)].Network, w)
		}
	}
	call(t, cs, "sandbox_create", map[string]any{"name": "y", "allow": []string{"*.b.example.com"}}, nil)
	if n := f.lastCreate.Network; n == nil || !reflect.DeepEqual(n.Allow, []string{"*.b.example.com"}) {
		t.Errorf("create network %+v", n)
	}

	// No domains in the policy: the profile's own network, and no allow.
	f2 := newFake()
	cs2, _ := connect(t, f2, Policy{})
	call(t, cs2, "sandbox_run", map[string]any{"command": "true"}, nil)
	if len(f2.runs) != 1 || f2.runs[0].Network != nil {
		t.Errorf("default run network: %+v", f2.runs)
	}
	res = call(t, cs2, "sandbox_run", map[string]any{"command": "true", "allow": []string{"pypi.org"}}, nil)
	if !res.IsError || !strings.Contains(errText(res), "allows no domains") || len(f2.runs) != 1 {
		t.Errorf("allow without server domains: %q", errText(res))
	}
}

func TestDomainCovers(t *testing.T) {
	for _, c := range []struct {
		allowed, asked string
		ok             bool
	}{
		{"a.com", "a.com", true},
		{"a.com", "b.a.com", false},
		{"*.a.com", "b.a.com", true},
		{"*.a.com", "*.b.a.com", true},
		{"*.a.com", "*.a.com", true},
		{"*.a.com", "a.com", false},
		{"*.a.com", "xa.com", false},
		{"*.a.com", "*.xa.com", false},
	} {
		if got := domainCovers(c.allowed, c.asked); got != c.ok {
			t.Errorf("domainCovers(%q, %q) = %v", c.allowed, c.asked, got)
		}
	}
	for _, bad := range []string{"", "*", "*.", "a..com", "a.com/x", "a:80", "*.*.a.com", ".a.com", strings.Repeat("a", 300)} {
		if _, err := normalizeDomain(bad); err == nil {
			t.Errorf("normalizeDomain(%q) accepted", bad)
		}
	}
}

func TestHostPath(t *testing.T) {
	allowed := t.TempDir()
	outside := t.TempDir()
	os.Mkdir(filepath.Join(allowed, "proj"), 0o755)
	os.Symlink(outside, filepath.Join(allowed, "out"))
	os.Symlink(filepath.Join(outside, "nothing"), filepath.Join(allowed, "dangling"))
	p, err := Policy{HostDirs: []string{allowed}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{allowed, filepath.Join(allowed, "proj"), filepath.Join(allowed, "new", "deeper"), filepath.Join(allowed, "proj", "..", "proj")} {
		if _, err := p.hostPath(ok); err != nil {
			t.Errorf("hostPath(%s): %v", ok, err)
		}
	}
	for _, bad := range []string{outside, "relative", filepath.Join(allowed, "out"), filepath.Join(allowed, "out", "x"),
		filepath.Join(allowed, "dangling"), filepath.Join(allowed, ".."), allowed + "-sibling"} {
		if _, err := p.hostPath(bad); err == nil {
			t.Errorf("hostPath(%s) accepted", bad)
		}
	}
	if _, err := (Policy{}).hostPath(allowed); err == nil || !strings.Contains(err.Error(), "--allow-dir") {
		t.Errorf("no host dirs: %v", err)
	}
	if err := (Policy{HostDirs: []string{filepath.Join(outside, "missing")}}).Check(); err == nil {
		t.Error("Check accepted a host directory that does not exist")
	}
}

// transferFake keeps what TarIn received and serves it back on TarOut.
type transferFake struct {
	*fakeClient
	dirs []string
	tars map[string][]byte // dir → the tar put there
}

func (f *transferFake) Mkdir(ctx context.Context, name, p string) error {
	f.dirs = append(f.dirs, name+":"+p)
	return nil
}

func (f *transferFake) TarIn(ctx context.Context, name, dir string, r io.Reader) error {
	b, err := io.ReadAll(r)
	f.tars[name+":"+dir] = b
	return err
}

func (f *transferFake) TarOut(ctx context.Context, name, p string) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(f.tars[name+":"+filepath.Dir(p)])), nil
}

func TestUploadDownload(t *testing.T) {
	allowed := t.TempDir()
	src := filepath.Join(allowed, "proj")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "sub", "a.txt"), []byte("hello"), 0o644)
	os.Symlink("/etc/shadow", filepath.Join(src, "link"))
	f := &transferFake{fakeClient: newFake(), tars: map[string][]byte{}}
	cs, _ := connect(t, f, Policy{HostDirs: []string{allowed}})
	call(t, cs, "sandbox_create", map[string]any{"name": "sb"}, nil)

	var up TransferOutput
	if res := call(t, cs, "sandbox_upload_dir", map[string]any{"name": "sb", "host_path": src, "path": "/work"}, &up); res.IsError {
		t.Fatal(errText(res))
	}
	if up.Copied != "/work/proj" || up.Bytes == 0 || len(f.dirs) != 1 || f.dirs[0] != "sb:/work" {
		t.Errorf("upload: %+v, mkdirs %v", up, f.dirs)
	}
	var down TransferOutput
	dest := filepath.Join(allowed, "back")
	if res := call(t, cs, "sandbox_download_dir", map[string]any{"name": "sb", "path": "/work/proj", "host_path": dest}, &down); res.IsError {
		t.Fatal(errText(res))
	}
	if down.Copied != filepath.Join(dest, "proj") {
		t.Errorf("download: %+v", down)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "proj", "sub", "a.txt")); string(b) != "hello" {
		t.Errorf("downloaded file: %q %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dest, "proj", "link")); l != "/etc/shadow" {
		t.Errorf("the link came back as %q %v, want the link itself, not followed", l, err)
	}
	for _, args := range []map[string]any{
		{"name": "sb", "host_path": "/etc", "path": "/x"},
		{"name": "sb", "host_path": filepath.Join(src, "sub", "a.txt"), "path": "/x"},
		{"name": "sb", "host_path": src, "path": "relative"},
	} {
		if res := call(t, cs, "sandbox_upload_dir", args, nil); !res.IsError {
			t.Errorf("upload %v accepted", args)
		}
	}
	if res := call(t, cs, "sandbox_download_dir", map[string]any{"name": "sb", "path": "/work/proj", "host_path": "/tmp/x"}, nil); !res.IsError {
		t.Error("download outside the allowed directories accepted")
	}
}

func TestMiddleBuffer(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, max := range []int{64, 100, 1000} {
		for _, size := range []int{0, 1, max - 1, max, max + 1, 2 * max, 2*max + 1, 3 * max, 10*max + 7} {
			var whole strings.Builder
			for whole.Len() < size {
				whole.WriteString("abcé€😀\n"[r.IntN(8):])
			}
			s := whole.String()[:size]
			b := &middleBuffer{max: max}
			for rest := s; rest != ""; {
				n := min(len(rest), 1+r.IntN(max))
				b.Write([]byte(rest[:n]))
				rest = rest[n:]
			}
			got, cut := b.String()
			want, wantCut := truncateMiddle(s, max)
			if got != want || cut != wantCut {
				t.Errorf("max %d size %d: middleBuffer %q (%v), truncateMiddle %q (%v)", max, size, got, cut, want, wantCut)
			}
		}
	}
}
