package soak

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentkernel/agentkernel/internal/netgw/dnstest"
	"github.com/agentkernel/agentkernel/internal/testutil"
	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
)

// The suite's "internet" is a network namespace it makes (the world), as
// test/integration's network suite does: the daemon runs there, so its
// gateways dial from there and nothing reaches the host's network. In the
// world, lo routes 203.0.113.0/24 locally; an HTTP server on
// 203.0.113.10:80 answers "soak PATH", and a DNS server on the world's
// 127.0.0.1 resolves soak.test to it. Published ports listen on the world's
// loopback.
const (
	worldIP   = "203.0.113.10"
	worldName = "soak.test"
)

type world struct {
	ns *os.File
	h  *akhome.Home
	// served counts the requests the world's HTTP server answered.
	served atomic.Int64
}

// inWorld runs f on a thread inside the world's namespace: sockets opened
// and processes started by f live there.
func (w *world) inWorld(f func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := unix.Setns(int(w.ns.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer func() {
		// A thread that cannot go back stays locked and dies with
		// its goroutine.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return f()
}

// dial connects to addr from inside the world (a published port).
func (w *world) dial(ctx context.Context, addr string) (c net.Conn, err error) {
	err = w.inWorld(func() error {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// newWorld makes the world and its servers, writes the home's daemon.toml
// and starts the daemon in it.
func newWorld(t *testing.T, h *akhome.Home) *world {
	t.Helper()
	w := &world{h: h, ns: testutil.NewNetNS(t)}
	var dnsAddr netip.AddrPort
	err := w.inWorld(func() error {
		for _, args := range [][]string{
			{"link", "set", "lo", "up"},
			{"route", "add", "local", "203.0.113.0/24", "dev", "lo"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("ip %v: %v %s", args, err, out)
			}
		}
		ln, err := net.Listen("tcp", worldIP+":80")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.served.Add(1)
			io.WriteString(rw, "soak "+strings.TrimPrefix(r.URL.Path, "/"))
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		dnsAddr = dnstest.Start(t, map[string][]netip.Addr{worldName: {netip.MustParseAddr(worldIP)}}).Addr
		return nil
	})
	if err != nil {
		t.Fatalf("building the world: %v", err)
	}
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("[network]\nresolvers = [%q]\n", dnsAddr.String())
	if err := os.WriteFile(filepath.Join(h.Dir, "daemon.toml"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	w.startDaemon(t)
	return w
}

// startDaemon runs `agentkernel serve --no-tcp` for the home inside the
// world; the home's check stops it.
func (w *world) startDaemon(t *testing.T) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(w.h.Dir, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(akBin, "serve", "--no-tcp")
	cmd.Env = w.h.Environ()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := w.inWorld(cmd.Start); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	if !akhome.WaitFor(20*time.Second, func() bool { return akhome.SocketAnswers(w.h.Socket()) }) {
		cmd.Process.Kill()
		t.Fatal("the daemon did not come up")
	}
}

// links lists the world's network interfaces other than lo: a sandbox's
// tap that ended up in the daemon's namespace would show here.
func (w *world) links() ([]string, error) {
	var out []byte
	err := w.inWorld(func() (err error) {
		out, err = exec.Command("ip", "-o", "link", "show").Output()
		return err
	})
	if err != nil {
		return nil, err
	}
	var links []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && strings.TrimSuffix(f[1], ":") != "lo" {
			links = append(links, strings.TrimSuffix(f[1], ":"))
		}
	}
	return links, nil
}
