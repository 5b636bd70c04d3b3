package akhome

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckFindsLeftovers: the check is only worth something if it can
// fail. A process started with the home in its environment and a
// sandbox's state directory are both reported, and the process is killed.
func TestCheckFindsLeftovers(t *testing.T) {
	h, err := New("akhome-test")
	if err != nil {
		t.Fatal(err)
	}
	defer h.RemoveHome()
	cmd := exec.Command("sleep", "60")
	cmd.Env = h.Environ()
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	const id = "0123456789abcdef0123456789abcdef"
	if err := os.MkdirAll(filepath.Join(h.Layout().SandboxesDir(), id), 0o700); err != nil {
		t.Fatal(err)
	}
	h.NoteNamespaces() // finds the directory, remembers its UUID
	if got := h.UUIDs(); len(got) != 1 || got[0] != DashedUUID(id) {
		t.Fatalf("UUIDs after NoteNamespaces: %v", got)
	}
	problems := strings.Join(h.StopAndCheck(), "\n")
	if !strings.Contains(problems, "sleep 60") {
		t.Errorf("the home's process is not reported: %s", problems)
	}
	if !strings.Contains(problems, id) {
		t.Errorf("the sandbox directory is not reported: %s", problems)
	}
	<-done // killed by the check
}
