package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/term"

	"github.com/agentkernel/agentkernel/internal/agent/agenttest"
	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

const testPasswd = `root:x:0:0:root:/root:/bin/bash
# a comment
broken line
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
badnum:x:abc:1::/:/bin/sh
`

const testGroup = `root:x:0:
users:x:100:alice
dev:x:2000:alice,bob
alice:x:1000:
ops:x:3000:carol
`

func TestResolveUser(t *testing.T) {
	pw, gr := parsePasswd([]byte(testPasswd)), parseGroup([]byte(testGroup))
	cases := []struct {
		spec   string
		uid    uint32
		gid    uint32
		groups []uint32
		home   string
	}{
		{"", 0, 0, []uint32{0}, "/root"},
		{"alice", 1000, 1000, []uint32{1000, 100, 2000}, "/home/alice"},
		{"bob", 1001, 100, []uint32{100, 2000}, "/home/bob"},
		{"1000", 1000, 1000, []uint32{1000, 100, 2000}, "/home/alice"},
		{"4242", 4242, 4242, []uint32{4242}, ""},
		{"4242:77", 4242, 77, []uint32{77}, ""},
		{"alice:ops", 1000, 3000, []uint32{3000, 100, 2000}, "/home/alice"},
		{"bob:0", 1001, 0, []uint32{0, 2000}, "/home/bob"},
	}
	for _, c := range cases {
		id, err := resolveUserIn(pw, gr, c.spec, 0, 0)
		if err != nil {
			t.Errorf("%q: %v", c.spec, err)
			continue
		}
		if id.UID != c.uid || id.GID != c.gid || id.Home != c.home || !slices.Equal(id.Groups, c.groups) {
			t.Errorf("%q: got %+v, want uid %d gid %d groups %v home %q", c.spec, id, c.uid, c.gid, c.groups, c.home)
		}
	}
	for spec, class := range map[string]error{
		"nobody": errdefs.ErrNotFound, "alice:nogroup": errdefs.ErrNotFound, ":5": errdefs.ErrInvalidArgument,
		"alice:": errdefs.ErrInvalidArgument, "99999999999": errdefs.ErrInvalidArgument, "badnum": errdefs.ErrNotFound,
	} {
		if _, err := resolveUserIn(pw, gr, spec, 0, 0); !errors.Is(err, class) {
			t.Errorf("%q: %v, want %v", spec, err, class)
		}
	}
}

// TestResolveUserFromRoot reads the account files below Config.Root.
func TestResolveUserFromRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte(testPasswd), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte(testGroup), 0o644)
	id, err := resolveUser(root, "alice")
	if err != nil || id.UID != 1000 || len(id.Groups) != 3 {
		t.Errorf("alice: %+v %v", id, err)
	}
	if _, err := resolveUser(t.TempDir(), "alice"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no passwd file: %v", err)
	}
	if id, err := resolveUser(t.TempDir(), "7:8"); err != nil || id.UID != 7 || id.GID != 8 {
		t.Errorf("numeric without passwd: %+v %v", id, err)
	}
}

func FuzzParseAccounts(f *testing.F) {
	f.Add([]byte(testPasswd), []byte(testGroup), "alice:dev")
	f.Add([]byte("::::::\n"), []byte(":::\n"), "0")
	f.Fuzz(func(t *testing.T, pwData, grData []byte, spec string) {
		pw, gr := parsePasswd(pwData), parseGroup(grData)
		id, err := resolveUserIn(pw, gr, spec, 0, 0)
		if err == nil && (len(id.Groups) == 0 || id.Groups[0] != id.GID) {
			t.Fatalf("groups %v do not start with gid %d", id.Groups, id.GID)
		}
	})
}

func TestBuildEnv(t *testing.T) {
	base := []string{"AGENTKERNEL_API_KEY=secret", "HOME=/old", "LANG=C", "AGENTKERNEL_X=y", "KEEP=1"}
	env := buildEnv(base, "/home/alice", true, []string{"LANG=en", "NEW=2", "PATH=/mine"})
	want := []string{"HOME=/home/alice", "LANG=en", "KEEP=1", "PATH=/mine", "TERM=xterm-256color", "NEW=2"}
	if !slices.Equal(env, want) {
		t.Errorf("env %v, want %v", env, want)
	}
	env = buildEnv(nil, "", false, nil)
	if !slices.Equal(env, []string{"PATH=" + DefaultPath, "HOME=/"}) {
		t.Errorf("empty env: %v", env)
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "prog"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "data"), []byte("x"), 0o644)
	if p, st := lookPath("prog", "/nonexistent:"+dir, "/"); st != nil || p != filepath.Join(dir, "prog") {
		t.Errorf("prog: %q %+v", p, st)
	}
	if _, st := lookPath("data", dir, "/"); st == nil || st.Code != 126 {
		t.Errorf("non-executable: %+v", st)
	}
	if _, st := lookPath("nope", dir, "/"); st == nil || st.Code != 127 {
		t.Errorf("missing: %+v", st)
	}
	if p, st := lookPath("./prog", "", dir); st != nil || p != "./prog" {
		t.Errorf("relative to workdir: %q %+v", p, st)
	}
	if p, st := lookPath("prog", "bin:.", dir); st != nil || p != "prog" {
		t.Errorf("relative PATH entry: %q %+v", p, st)
	}
}

func TestRing(t *testing.T) {
	r := newRing(10)
	r.Write([]byte("abc"))
	if got := string(r.Bytes()); got != "abc" {
		t.Errorf("got %q", got)
	}
	r.Write([]byte("defghij"))
	r.Write([]byte("klm"))
	if got := string(r.Bytes()); got != "defghijklm" {
		t.Errorf("got %q", got)
	}
	r.Write([]byte("0123456789ABCDEF"))
	if got := string(r.Bytes()); got != "6789ABCDEF" {
		t.Errorf("got %q", got)
	}
	for i := range 100 {
		r.Write([]byte{byte('a' + i%26)})
	}
	if got := r.Bytes(); len(got) != 10 || !bytes.Equal(got, []byte("mnopqrstuv")) {
		t.Errorf("got %q", got)
	}
}

// TestServeFile serves a session over a terminal device, the way the agent
// uses a virtio console: file:/dev/pts/N, with the host on the PTY master.
func TestServeFile(t *testing.T) {
	master, tty, err := openPTY(0, 0) // a pollable master, so that Close interrupts reads
	if err != nil {
		t.Skipf("no PTY: %v", err)
	}
	defer master.Close()
	defer tty.Close()
	// Raw before anything is written, so that the line discipline does not
	// echo or cook the first bytes; the agent sets raw mode again itself.
	if _, err := term.MakeRaw(int(tty.Fd())); err != nil {
		t.Fatal(err)
	}
	srv := New(Config{})
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.ServeAddr(ctx, "file:"+tty.Name())
	c, err := agentproto.NewClient(master)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data := strings.Repeat("binary\x00\x03\x04\r\n\xff", 10000)
	r := agenttest.RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"cat"}}, data)
	if r.Stdout != data {
		t.Errorf("cat over a serial-like port returned %d bytes, want %d", len(r.Stdout), len(data))
	}
}

func TestServeAddrErrors(t *testing.T) {
	srv := New(Config{})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, addr := range []string{"tcp:1.2.3.4:5", "tcp:0.0.0.0:7070", "tcp::7070", "tcp:localhost:7070", "fd:x", "unix:", "file:"} {
		if err := srv.ServeAddr(ctx, addr); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%q: %v", addr, err)
		}
	}
	notSock := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notSock, nil, 0o644)
	if err := srv.ServeAddr(ctx, "unix:"+notSock); err == nil {
		t.Errorf("listening over a regular file succeeded")
	}
}
