package cli

import (
	"os"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// TestAttachTerminal runs attach with a real pseudo-terminal as its stdin:
// the terminal goes raw while attached, the shell's size follows it
// (SIGWINCH), and the terminal is restored afterwards.
func TestAttachTerminal(t *testing.T) {
	svc, sock := startDaemon(t)
	svc.add("dev")
	svc.resizes = make(chan [2]uint16, 4)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 90}); err != nil {
		t.Fatal(err)
	}
	before, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}

	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cliTo(t, tty, &out, &errb, "--socket", sock, "attach", "dev", "--", "sh", "-c", "echo ready; read line; exit $line")
	}()
	waitFor(t, "the shell", func() bool { return len(svc.execOpts()) == 1 && out.String() == "ready\n" })
	if e := svc.execOpts()[0]; !e.TTY || e.Rows != 30 || e.Cols != 90 {
		t.Fatalf("exec options %+v", e)
	}
	during, _ := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if during.Lflag&unix.ICANON != 0 || during.Lflag&unix.ECHO != 0 {
		t.Fatal("the terminal is not in raw mode while attached")
	}

	pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: 120})
	syscall.Kill(os.Getpid(), syscall.SIGWINCH)
	select {
	case got := <-svc.resizes:
		if got != [2]uint16{50, 120} {
			t.Fatalf("resize %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no resize after SIGWINCH")
	}

	ptmx.Write([]byte("5\n"))
	select {
	case code := <-done:
		if code != 5 {
			t.Fatalf("code %d, stderr %q", code, errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("attach did not end")
	}
	after, _ := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("terminal not restored:\nbefore %+v\nafter  %+v", before, after)
	}
}
