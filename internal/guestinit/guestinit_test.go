package guestinit

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

func TestModuleParams(t *testing.T) {
	got := moduleParams("console=ttyS0 virtio_mmio.device=4K@0xfeb00e00:12 virtio-mmio.device=4K@0xfeb00c00:11 quiet loop.max_loop=2 -- --init x.y=z")
	want := map[string]string{"virtio_mmio": "device=4K@0xfeb00e00:12 device=4K@0xfeb00c00:11", "loop": "max_loop=2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
}

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"003-03-virtio_blk.ko": "virtio_blk", "008-08-virtio_rng.ko": "virtio_rng",
		"000-00-virtio-ring.ko": "virtio_ring", "x.ko": "x",
	} {
		if got := modName(in); got != want {
			t.Errorf("modName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.json")
	os.WriteFile(p, []byte(`{"hostname":"h","env":["A=1"],"network":"none","lowers":["aketc","akusr"]}`), 0o600)
	c, err := ReadConfig(p)
	if err != nil || c.Hostname != "h" || len(c.Lowers) != 2 {
		t.Fatalf("%+v %v", c, err)
	}
	os.WriteFile(p, []byte(`{"hostname":"h","surprise":1}`), 0o600)
	if _, err := ReadConfig(p); err == nil {
		t.Fatal("an unknown field was accepted")
	}
	os.WriteFile(p, []byte(`{"env":["`+strings.Repeat("a", maxConfig)+`"]}`), 0o600)
	if _, err := ReadConfig(p); err == nil {
		t.Fatal("an oversized config was accepted")
	}
}

func FuzzModuleParams(f *testing.F) {
	f.Add("a.b=c d.e=f -- g.h=i")
	f.Add("=.= .=x a.=b")
	f.Fuzz(func(t *testing.T, s string) {
		for mod, p := range moduleParams(s) {
			if mod == "" || p == "" {
				t.Fatalf("empty entry %q=%q", mod, p)
			}
		}
	})
}

// TestListener runs the outer session over a pty standing in for the
// virtio port: the host side opens two streams, each arrives as its own
// connection, and bytes pass both ways.
func TestListener(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skip("no pty:", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if _, err := term.MakeRaw(int(ptmx.Fd())); err != nil {
		t.Fatal(err)
	}
	// A non-blocking copy, so that Go's poller serves it and Close does
	// not wait for a read in progress.
	fd, err := unix.Dup(int(ptmx.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fd, true)
	master := os.NewFile(uintptr(fd), "ptmx")
	defer master.Close()
	l := NewListener(tty.Name(), slog.New(slog.DiscardHandler))
	defer l.Close()
	host, err := yamux.Client(master, OuterConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	for i, msg := range []string{"first", "second"} {
		hc, err := host.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hc.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		gc, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msg))
		gc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(gc, buf); err != nil || string(buf) != msg {
			t.Fatalf("stream %d: %q %v", i, buf, err)
		}
		gc.Write([]byte("ok"))
		hc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(hc, buf[:2]); err != nil || string(buf[:2]) != "ok" {
			t.Fatalf("reply %d: %q %v", i, buf[:2], err)
		}
		gc.Close()
		hc.Close()
	}
	l.Close()
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after Close succeeded")
	}
}
