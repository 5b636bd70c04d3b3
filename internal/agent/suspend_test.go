package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/agentproto"
)

// TestSuspendListen: a suspended agent has no socket file and accepts no
// session, its background processes go on, and after listen a new session
// sees them again.
func TestSuspendListen(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the control socket answers uid 0 only")
	}
	controlSocket = "@agentkernel-agent-control-test-" + strconv.Itoa(os.Getpid())
	sock := filepath.Join(t.TempDir(), "agent.sock")
	srv := New(Config{})
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.ServeAddr(ctx, "unix:"+sock)
	dial := func() (*agentproto.Client, error) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			return nil, err
		}
		return agentproto.NewClient(c)
	}
	var c *agentproto.Client
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if c, err = dial(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	bg, err := c.StartBackground(ctx, agentproto.ExecRequest{Argv: []string{"sleep", "30"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Control(ctx, ControlSuspend); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Error("the session outlived the suspend")
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file after suspend: %v", err)
	}
	if err := Control(ctx, ControlSuspend); err != nil {
		t.Errorf("a second suspend: %v", err)
	}
	if err := Control(ctx, ControlListen); err != nil {
		t.Fatal(err)
	}
	c2, err := dial()
	if err != nil {
		t.Fatalf("after listen: %v", err)
	}
	defer c2.Close()
	list, err := c2.ListBackground(ctx)
	if err != nil || len(list) != 1 || list[0].ID != bg.ID || !list[0].Running {
		t.Errorf("background after the suspend: %v %+v", err, list)
	}
	if err := Control(ctx, "bogus"); err == nil {
		t.Error("a bogus request was accepted")
	}
}
