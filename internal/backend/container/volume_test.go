package container

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/internal/backend"
	"github.com/agentkernel/agentkernel/internal/loopfs"
	"github.com/agentkernel/agentkernel/internal/testutil"
	"github.com/agentkernel/agentkernel/internal/volume"
)

// TestVolume mounts a named volume into a runc sandbox: what one writes
// the next reads, writing past the size is "No space left on device", a
// read-only use cannot write, two read-only uses at once share one loop
// device, and no loop device is left afterwards.
func TestVolume(t *testing.T) { testVolume(t, newEnv(t)) }

// TestGVisorVolume is TestVolume on runsc.
func TestGVisorVolume(t *testing.T) { testVolume(t, newGVisorEnv(t)) }

func testVolume(t *testing.T, e *env) {
	ctx := context.Background()
	vs := &volume.Store{Dir: filepath.Join(e.home, "volumes")}
	info, err := vs.Create(ctx, "data", 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	s := e.spec(t)
	s.Volumes = []backend.VolumeMount{{Name: "data", Disk: info.Disk, Path: "/data"}}
	inst := e.start(t, s)
	sh(t, inst, "echo kept > /data/f && mkdir /data/d && sync")
	r := run(t, inst, "/bin/sh", "-c", "dd if=/dev/zero of=/data/big bs=1M count=64")
	if r.Code == 0 || !strings.Contains(r.Stderr, "No space left on device") {
		t.Errorf("filling the volume: %+v", r)
	}
	sh(t, inst, "rm -f /data/big")
	if got := sh(t, inst, "stat -c %u:%g /data /data/f"); got != "0:0\n0:0" {
		t.Errorf("owners in the sandbox: %q, want root's", got)
	}
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	e.assertClean(t, s)
	if ds := testutil.LoopDevicesLeft(vs.Dir); len(ds) != 0 {
		t.Errorf("loop devices left after Stop: %v", ds)
	}

	var ins []backend.Instance
	for i := 0; i < 2; i++ {
		s2 := e.spec(t)
		s2.Volumes = []backend.VolumeMount{{Name: "data", Disk: info.Disk, Path: "/srv/v", ReadOnly: true}}
		ins = append(ins, e.start(t, s2))
	}
	for _, in := range ins {
		if got := sh(t, in, "cat /srv/v/f"); got != "kept" {
			t.Errorf("the next sandbox reads %q", got)
		}
		if r := run(t, in, "/bin/sh", "-c", "touch /srv/v/x"); r.Code == 0 {
			t.Error("a read-only volume is writable")
		}
	}
	if ds := loopfs.Devices(vs.Dir); len(ds) != 1 {
		t.Errorf("two read-only uses: loop devices %v, want one", ds)
	}
}
