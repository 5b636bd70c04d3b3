package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/cli"
)

// clientRoot builds the command tree as a client-only build's main does
// (daemon_other.go), whatever this test is built for.
func clientRoot(t *testing.T) *cobra.Command {
	t.Helper()
	saved := cli.SetupFunc
	cli.SetupFunc = clientSetup
	t.Cleanup(func() { cli.SetupFunc = saved })
	root := cli.NewRootCmd(cli.NewApp())
	root.AddCommand(clientDaemonCommands()...)
	return root
}

// commandPaths lists every command of the tree, hidden ones too, with
// whether each is hidden.
func commandPaths(root *cobra.Command) []string {
	var paths []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		p := c.CommandPath()
		if c.Hidden {
			p += " (hidden)"
		}
		paths = append(paths, p)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	slices.Sort(paths)
	return paths
}

// TestClientTreeMatches: the client-only build has every command the Linux
// build has (a daemon role added on Linux without a stand-in fails here),
// so that `serve` on macOS is refused with the reason, not "unknown command".
func TestClientTreeMatches(t *testing.T) {
	want := commandPaths(rootCmd())
	got := commandPaths(clientRoot(t))
	if !slices.Equal(got, want) {
		t.Errorf("client-only command tree:\n%s\nthis build's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestClientRefusesDaemonCommands runs the daemon-side commands in the
// client-only tree: each fails with daemonLinuxOnly, whatever flags of the
// real command it is given, and its help still works.
func TestClientRefusesDaemonCommands(t *testing.T) {
	if !strings.Contains(daemonLinuxOnly, "--url") || !strings.Contains(daemonLinuxOnly, "AGENTKERNEL_BASE_URL") {
		t.Fatalf("daemonLinuxOnly %q does not name --url and AGENTKERNEL_BASE_URL", daemonLinuxOnly)
	}
	for _, args := range [][]string{
		{"serve"},
		{"serve", "--host", "0.0.0.0", "--api-key", "0123456789abcdef", "-p", "18888"},
		{"--url", "http://127.0.0.1:1", "serve", "--tls"},
		{"supervise", "/tmp/x"},
		{"setup"},
		{"setup", "--skip-disk"},
	} {
		root := clientRoot(t)
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		code := cli.Execute(context.Background(), root)
		if code == 0 || !strings.Contains(out.String(), "agentkernel: ") || !strings.Contains(out.String(), daemonLinuxOnly) {
			t.Errorf("%q: exit %d, %q; want a failure saying %q", args, code, out.String(), daemonLinuxOnly)
		}
	}

	root := clientRoot(t)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"serve", "--help"})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), daemonLinuxOnly) {
		t.Errorf("serve --help: %v, %q", err, out.String())
	}
	if err := noLocalDaemon(); !strings.Contains(err.Error(), daemonLinuxOnly) {
		t.Errorf("without an address: %v", err)
	}
}
