package testutil

import (
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// NewNetNS makes a fresh network namespace (with nothing in it, not even lo
// up) and returns it open; it is closed when t ends. Tests build their own
// "world" in it: servers, resolvers, the daemon.
func NewNetNS(t *testing.T) *os.File {
	t.Helper()
	var ns *os.File
	done := make(chan error, 1)
	go func() { // a fresh namespace on a thread that then dies
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		var err error
		ns, err = os.Open("/proc/thread-self/ns/net")
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("creating a network namespace: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}
