package microvm

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/volume"
)

// TestVolumeDrive attaches a named volume's image to a VM read-write: a
// file written there is read by the next VM, writing past the volume's
// size fails with "No space left on device", and a read-only attachment
// refuses writes.
func TestVolumeDrive(t *testing.T) {
	requireVM(t)
	ctx := context.Background()
	vs := &volume.Store{Dir: filepath.Join(t.TempDir(), "volumes")}
	info, err := vs.Create(ctx, "data", 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	be := newBackend(t, Options{})

	s := newSpec(t)
	s.Volumes = []backend.VolumeMount{{Name: "data", Disk: info.Disk, Path: "/data"}}
	in := start(t, be, s)
	c := client(t, in)
	out, _, code, err := run(ctx, c, "sh", "-c", "echo kept > /data/f && sync && dd if=/dev/zero of=/data/big bs=1M count=64 2>&1; sync")
	if err != nil || !strings.Contains(out, "No space left on device") {
		t.Fatalf("filling the volume: %q %d %v", out, code, err)
	}
	c.Close()
	if err := in.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	s2 := newSpec(t)
	s2.Volumes = []backend.VolumeMount{{Name: "data", Disk: info.Disk, Path: "/srv/v", ReadOnly: true}}
	in2 := start(t, be, s2)
	c2 := client(t, in2)
	out, _, code, err = run(ctx, c2, "sh", "-c", "cat /srv/v/f; touch /srv/v/x 2>/dev/null && echo writable; true")
	if err != nil || code != 0 || out != "kept\n" {
		t.Fatalf("the next VM reads %q (%d, %v), want %q and no write", out, code, err, "kept\n")
	}
}
