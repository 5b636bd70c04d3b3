package agenttest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

func testPTY(t *testing.T, env Env) {
	c := env.Client(t)
	r := RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"/bin/sh", "-c", "tty; stty size; echo TERM=$TERM; echo err >&2"},
		TTY: true, Rows: 24, Cols: 80}, "")
	if !strings.Contains(r.Stdout, "/dev/pts/") || !strings.Contains(r.Stdout, "24 80") ||
		!strings.Contains(r.Stdout, "TERM=xterm-256color") || !strings.Contains(r.Stdout, "err") || r.Stderr != "" {
		t.Errorf("tty: %+v", r)
	}
	if r := RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"stty", "size"}, TTY: true}, ""); r.Stdout != "24 80\r\n" {
		t.Errorf("default size: %q", r.Stdout)
	}
	// An interactive shell: resize between two commands.
	p, err := c.Exec(ctxT(t), agentproto.ExecRequest{Argv: []string{"/bin/sh"}, TTY: true, Stdin: true, Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	go io.Copy(io.Discard, p.Stderr())
	io.WriteString(p.Stdin(), "stty size\n")
	waitFor(t, p.Stdout(), "24 80")
	if err := p.Resize(40, 120); err != nil {
		t.Fatal(err)
	}
	io.WriteString(p.Stdin(), "stty size; exit 5\n")
	waitFor(t, p.Stdout(), "40 120")
	io.Copy(io.Discard, p.Stdout())
	if st, err := p.Wait(); err != nil || st.Code != 5 {
		t.Errorf("shell exit: %+v %v", st, err)
	}
	// Stdin EOF on a TTY is ^D.
	r = RunProcess(t, c, agentproto.ExecRequest{Argv: []string{"cat"}, TTY: true}, "hello\n")
	if !strings.Contains(r.Stdout, "hello") || r.Status.Code != 0 {
		t.Errorf("cat on tty: %+v", r)
	}
	if p, err := c.Exec(ctxT(t), agentproto.ExecRequest{Argv: []string{"true"}}); err == nil {
		if err := p.Resize(1, 1); err == nil {
			t.Errorf("Resize without a TTY succeeded")
		}
		p.Close()
	}
}

// testSlowReader pushes 10 MiB through a reader that takes its time: flow
// control must hold the producer back instead of buffering in the agent.
func testSlowReader(t *testing.T, env Env) {
	c := env.Client(t)
	const total = 10 << 20
	p, err := c.Exec(ctxT(t), agentproto.ExecRequest{Argv: []string{"dd", "if=/dev/zero", "bs=65536", "count=160"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	go io.Copy(io.Discard, p.Stderr())
	before := peakRSS(env.HostPID)
	buf := make([]byte, 32<<10)
	n := 0
	for {
		k, err := p.Stdout().Read(buf)
		n += k
		if err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	st, err := p.Wait()
	if err != nil || st.Code != 0 || n != total {
		t.Fatalf("read %d bytes, status %+v %v", n, st, err)
	}
	if env.HostPID != 0 {
		after := peakRSS(env.HostPID)
		t.Logf("agent peak RSS %d KiB before, %d KiB after", before, after)
		if after-before > 8<<10 {
			t.Errorf("agent peak RSS grew by %d KiB for a 10 MiB stream", after-before)
		}
	}
}

// peakRSS returns VmHWM of pid in KiB, 0 if unknown.
func peakRSS(pid int) int {
	if pid == 0 {
		return 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

func testBackground(t *testing.T, env Env) {
	c := env.Client(t)
	ctx := ctxT(t)
	long, err := c.StartBackground(ctx, sh("echo started; echo oops >&2; exec sleep 30"))
	if err != nil {
		t.Fatal(err)
	}
	if !long.Running || long.PID <= 0 || long.ID == "" || long.ExitCode != nil {
		t.Errorf("started: %+v", long)
	}
	short, err := c.StartBackground(ctx, sh("echo bye; exit 5"))
	if err != nil {
		t.Fatal(err)
	}
	info := pollBackground(t, c, short.ID, func(i agentproto.BackgroundInfo) bool { return !i.Running })
	if info.ExitCode == nil || *info.ExitCode != 5 {
		t.Errorf("short: %+v", info)
	}
	if out, _, err := c.BackgroundLogs(ctx, short.ID); err != nil || string(out) != "bye\n" {
		t.Errorf("short logs %q %v", out, err)
	}
	var out, errOut []byte
	for i := 0; i < 100 && (string(out) != "started\n" || string(errOut) != "oops\n"); i++ {
		time.Sleep(20 * time.Millisecond)
		if out, errOut, err = c.BackgroundLogs(ctx, long.ID); err != nil {
			t.Fatal(err)
		}
	}
	if string(out) != "started\n" || string(errOut) != "oops\n" {
		t.Errorf("long logs %q %q", out, errOut)
	}
	list, err := c.ListBackground(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, i := range list {
		if i.ID == long.ID || i.ID == short.ID {
			found++
		}
	}
	if found != 2 {
		t.Errorf("list %+v lacks our processes", list)
	}
	if err := c.KillBackground(ctx, long.ID, 0); err != nil {
		t.Fatal(err)
	}
	info = pollBackground(t, c, long.ID, func(i agentproto.BackgroundInfo) bool { return !i.Running })
	if info.ExitCode == nil || *info.ExitCode != 137 {
		t.Errorf("killed: %+v", info)
	}
	if err := c.KillBackground(ctx, long.ID, 15); !isErr(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("kill exited: %v", err)
	}
	if _, err := c.GetBackground(ctx, "bg-nope"); !isErr(err, errdefs.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	missing, err := c.StartBackground(ctx, agentproto.ExecRequest{Argv: []string{"no-such-binary-xyz"}})
	if err != nil || missing.Running || missing.ExitCode == nil || *missing.ExitCode != 127 {
		t.Errorf("missing binary in background: %+v %v", missing, err)
	}
	// Output beyond the retained size keeps only the tail.
	big, err := c.StartBackground(ctx, sh("head -c 3000000 /dev/zero; echo END"))
	if err != nil {
		t.Fatal(err)
	}
	pollBackground(t, c, big.ID, func(i agentproto.BackgroundInfo) bool { return !i.Running })
	out, _, err = c.BackgroundLogs(ctx, big.ID)
	if err != nil || len(out) != agentproto.BackgroundLogSize || !bytes.HasSuffix(out, []byte("END\n")) {
		t.Errorf("big logs: %d bytes, %v", len(out), err)
	}
}

func pollBackground(t *testing.T, c *agentproto.Client, id string, done func(agentproto.BackgroundInfo) bool) agentproto.BackgroundInfo {
	t.Helper()
	for range 500 {
		info, err := c.GetBackground(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if done(info) {
			return info
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("background process %s did not reach the wanted state", id)
	return agentproto.BackgroundInfo{}
}

func mustWrite(t *testing.T, c *agentproto.Client, path string, mode os.FileMode, data string) {
	t.Helper()
	if err := c.WriteFile(ctxT(t), path, mode, strings.NewReader(data)); err != nil {
		t.Fatalf("WriteFile %s: %v", path, err)
	}
}
