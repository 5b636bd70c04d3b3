package integration

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestAttachPTY runs `agentkernel attach` on a pseudo-terminal, as a user's
// terminal would: the shell must see the terminal's size, run what is
// typed, and attach must exit with the shell's code.
func TestAttachPTY(t *testing.T) {
	requireEnv(t)
	e := shared
	e.create(t, "it-att")
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := e.command(ctx, "attach", "it-att")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 37, Cols: 113})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	var out syncBuffer
	readDone := make(chan struct{})
	go func() {
		io.Copy(&out, ptmx) // ends with EIO once the CLI has exited
		close(readDone)
	}()
	// Typed input, echoed back by the remote terminal: the marker only
	// appears computed (42) when the shell ran it.
	if _, err := io.WriteString(ptmx, "stty size; echo marker-$((6*7)); exit 3\r"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return strings.Contains(out.String(), "marker-42") }) {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no marker-42 from the shell; terminal output: %q", out.String())
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("attach: %v, want exit status 3; terminal output: %q", err, out.String())
	}
	ptmx.Close()
	select {
	case <-readDone:
	case <-time.After(5 * time.Second):
	}
	if !strings.Contains(out.String(), "37 113") {
		t.Errorf("the shell did not see the 37x113 terminal; output: %q", out.String())
	}
}
