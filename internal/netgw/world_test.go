package netgw

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// The root tests run in a network and mount namespace of their own (the
// "world"), so that the servers they start, the tap devices, the sandbox
// namespaces and /etc/netns never touch the host's:
//
//   - 203.0.113.0/24 (TEST-NET-3) is routed to lo as local (AnyIP), so a
//     test server can listen on any address in it. The gateway's default
//     forbidden ranges do not cover it: tests run with the production
//     DefaultForbidden.
//   - lo also holds 198.51.100.1/24, a "host address" with its "LAN",
//     which DefaultForbidden must pick up.
//   - /etc/resolv.conf names the gateway (a bind mount of a temporary
//     file), and /run/netns is a tmpfs: nothing of the host's is changed.
//
// enterWorld re-executes the test binary inside such a namespace when it
// can (root, unshare, ip); it returns the child's exit code and true, or
// false when the current process should run the tests itself: inside the
// world already, or without root (the root tests then skip).
func enterWorld() (int, bool) {
	if os.Getenv("NETGW_WORLD") == "1" {
		if err := setupWorld(); err != nil {
			fmt.Fprintln(os.Stderr, "netgw test world:", err)
			return 1, true
		}
		return 0, false
	}
	if os.Geteuid() != 0 {
		return 0, false
	}
	for _, bin := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			return 0, false
		}
	}
	cmd := exec.Command("unshare", append([]string{"--net", "--mount", "--propagation", "private", os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), "NETGW_WORLD=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), true
		}
		fmt.Fprintln(os.Stderr, "netgw test world:", err)
		return 1, true
	}
	return 0, true
}

// worldResolvConf is bind-mounted on /etc/resolv.conf in the world, so
// every program in every sandbox namespace asks the gateway (all tests use
// the default gateway address). Tests may rewrite it, and restore it.
var worldResolvConf string

const defaultResolvConf = "nameserver 100.96.0.1\noptions timeout:2 attempts:1\n"

func setupWorld() error {
	f, err := os.CreateTemp("", "netgw-resolv-*.conf")
	if err != nil {
		return err
	}
	worldResolvConf = f.Name()
	f.WriteString(defaultResolvConf)
	f.Close()
	for _, args := range [][]string{
		{"mount", "--bind", worldResolvConf, "/etc/resolv.conf"},
		{"ip", "link", "set", "lo", "up"},
		{"ip", "route", "add", "local", "203.0.113.0/24", "dev", "lo"},
		{"ip", "addr", "add", "198.51.100.1/24", "dev", "lo"},
		{"mkdir", "-p", "/run/netns"},
		{"mount", "-t", "tmpfs", "-o", "size=1m", "netgw-test", "/run/netns"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// inWorld reports whether the tests run inside the world namespace.
func inWorld() bool { return os.Getenv("NETGW_WORLD") == "1" }
