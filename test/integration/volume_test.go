package integration

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/loopfs"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// Named volumes (issue 14, item 4): `volume create|list|info|delete` and
// -v NAME:/PATH[:ro|:shared] on run and create, on every backend.

// volumeInfo is `volume info --json NAME`.
func volumeInfo(t *testing.T, e *env, name string) api.VolumeInfo {
	t.Helper()
	var v api.VolumeInfo
	r := e.ok(t, "volume", "info", "--json", name)
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("volume info --json: %v\n%s", err, r.stdout)
	}
	return v
}

// testVolumeLifecycle is the story of one volume on backend: written by a
// run, read by the next (read-only, which cannot write), filled to its
// size with a clear error, and kept when the sandboxes go.
func testVolumeLifecycle(t *testing.T, e *env, backend, vol string) {
	e.ok(t, "volume", "create", vol, "-s", "16MB")
	t.Cleanup(func() { e.ak(t, "volume", "delete", "-f", vol) })
	be := []string{"--backend", backend}

	r := e.ok(t, append(append([]string{"run"}, be...), "-v", vol+":/data", "--", "sh", "-c", "echo kept > /data/f && sync")...)
	if r.stdout != "" {
		t.Errorf("writer printed %q", r.stdout)
	}
	r = e.ok(t, append(append([]string{"run"}, be...), "-v", vol+":/mnt/v:ro", "--", "cat", "/mnt/v/f")...)
	if r.stdout != "kept\n" {
		t.Errorf("the next sandbox reads %q, want %q", r.stdout, "kept\n")
	}
	r = e.ak(t, append(append([]string{"run"}, be...), "-v", vol+":/mnt/v:ro", "--", "touch", "/mnt/v/x")...)
	if r.code == 0 || !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("writing a read-only volume: %v", r)
	}
	// The size limit: dd past 16 MB fails with the kernel's own words.
	r = e.ak(t, append(append([]string{"run"}, be...), "-v", vol+":/data", "--", "dd", "if=/dev/zero", "of=/data/big", "bs=1M", "count=64")...)
	if r.code == 0 || !strings.Contains(r.stderr, "No space left on device") {
		t.Errorf("filling a 16MB volume: %v", r)
	}
	r = e.ok(t, append(append([]string{"run"}, be...), "-v", vol+":/data", "--", "sh", "-c", "rm /data/big; cat /data/f")...)
	if r.stdout != "kept\n" {
		t.Errorf("after filling it: %q", r.stdout)
	}
	v := volumeInfo(t, e, vol)
	if v.Name != vol || v.SizeBytes != 16<<20 || v.Mounts != 0 || len(v.UsedBy) != 0 {
		t.Errorf("volume info after the runs: %+v", v)
	}
}

// TestVolume runs the volume story on the container backend, then checks
// the rules: a read-write use refuses a second one (and a read-only one),
// delete refuses while a sandbox names the volume and -f leaves the
// running sandbox its data, hostile specs are refused, and POST /sandboxes
// takes upstream's volumes field.
func TestVolume(t *testing.T) {
	requireEnv(t)
	e := shared
	testVolumeLifecycle(t, e, "container", "it-vol")

	e.ok(t, "volume", "create", "it-vol2", "--size", "16MB")
	t.Cleanup(func() { e.ak(t, "volume", "delete", "-f", "it-vol2") })
	if out := e.ok(t, "volume", "list").stdout; !strings.Contains(out, "it-vol2") || !strings.Contains(out, "16.0 MiB") {
		t.Errorf("volume list:\n%s", out)
	}
	r := e.ak(t, "volume", "create", "it-vol2")
	if r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("creating it twice: %v", r)
	}

	e.create(t, "it-vol-holder", "-v", "it-vol2:/data")
	e.ok(t, "exec", "it-vol-holder", "--", "sh", "-c", "echo held > /data/f")
	if got := e.info(t, "it-vol-holder").Volumes; len(got) != 1 || got[0] != "it-vol2:/data" {
		t.Errorf("sandbox info's volumes: %q", got)
	}
	for _, use := range []string{"it-vol2:/data", "it-vol2:/data:ro", "it-vol2:/data:shared"} {
		r := e.ak(t, "sandbox", "create", "it-vol-second", "-v", use)
		if r.code == 0 || !strings.Contains(r.stderr, `mounted read-write by sandbox "it-vol-holder"`) {
			t.Errorf("a second use %s beside a read-write one: %v", use, r)
		}
		if r := e.ak(t, "sandbox", "info", "it-vol-second"); r.code == 0 {
			t.Errorf("the refused create left a sandbox: %v", r)
			e.ak(t, "sandbox", "remove", "it-vol-second")
		}
	}
	v := volumeInfo(t, e, "it-vol2")
	if v.Mounts != 1 || len(v.UsedBy) != 1 || v.UsedBy[0] != (api.VolumeUsage{Sandbox: "it-vol-holder", Path: "/data", Mode: "rw", Mounted: true}) {
		t.Errorf("volume info while held: %+v", v)
	}
	r = e.ak(t, "volume", "delete", "it-vol2")
	if r.code == 0 || !strings.Contains(r.stderr, "it-vol-holder") || !strings.Contains(r.stderr, "--force") {
		t.Errorf("deleting a volume in use: %v", r)
	}
	// -f: the name goes; the running sandbox keeps its (now nameless)
	// data and can still write it.
	r = e.ok(t, "volume", "delete", "-f", "it-vol2")
	if !strings.Contains(r.stderr, "it-vol-holder") {
		t.Errorf("delete -f does not name the sandbox that keeps it: %v", r)
	}
	if out := e.ok(t, "exec", "it-vol-holder", "--", "sh", "-c", "echo more >> /data/f && cat /data/f").stdout; out != "held\nmore\n" {
		t.Errorf("the holder after delete -f: %q", out)
	}
	if out := e.ok(t, "volume", "list").stdout; strings.Contains(out, "it-vol2") {
		t.Errorf("deleted volume still listed:\n%s", out)
	}
	e.ok(t, "sandbox", "stop", "it-vol-holder")
	r = e.ak(t, "sandbox", "start", "it-vol-holder")
	if r.code == 0 || !strings.Contains(r.stderr, `volume "it-vol2" is gone`) {
		t.Errorf("starting a sandbox whose volume was deleted: %v", r)
	}

	// Hostile specs, refused before anything is made.
	for _, bad := range []string{"../x:/data", "it-vol:relative", "it-vol:/", "it-vol:/proc", "it-vol:/sys/x", "it-vol:/dev/shm",
		"it-vol:/a/../b", "it-vol:/.agentkernel", "it-vol:/d:rx", "nosuch:/d", "it-vol:/d:ro:x", "a/b:/d"} {
		r := e.ak(t, "run", "-v", bad, "--", "true")
		if r.code == 0 {
			t.Errorf("-v %s accepted: %v", bad, r)
		}
	}
	for _, bad := range []string{"../x", "a/b", ".hidden", "-x", strings.Repeat("a", 64)} {
		if r := e.ak(t, "volume", "create", bad); r.code == 0 {
			t.Errorf("volume create %q accepted", bad)
		}
	}
	if code, body, _ := apiCall(t, e, "GET", "/volumes/..%2fetc", "", nil); code != http.StatusBadRequest {
		t.Errorf("GET /volumes/..%%2fetc: %d %s", code, body)
	}

	// Upstream's create body: volumes as "NAME:/PATH[:ro]".
	code, body, _ := apiCall(t, e, "POST", "/sandboxes", "application/json",
		strings.NewReader(`{"name":"it-vol-api","volumes":["it-vol:/data:ro"]}`))
	if code != http.StatusCreated {
		t.Fatalf("POST /sandboxes with volumes: %d %s", code, body)
	}
	e.info(t, "it-vol-api")
	t.Cleanup(func() { e.ak(t, "sandbox", "remove", "it-vol-api") })
	if out := e.ok(t, "exec", "it-vol-api", "--", "cat", "/data/f").stdout; out != "kept\n" {
		t.Errorf("the API's sandbox reads %q", out)
	}
}

// TestVolumeShared: :shared uses write side by side, a runc sandbox and
// a gVisor one, and each sees the other's files (one ext4 on the host).
func TestVolumeShared(t *testing.T) {
	requireRunsc(t)
	e := shared
	e.ok(t, "volume", "create", "it-vol-sh", "-s", "16MB")
	t.Cleanup(func() { e.ak(t, "volume", "delete", "-f", "it-vol-sh") })
	e.create(t, "it-vol-sh1", "-v", "it-vol-sh:/data:shared")
	e.create(t, "it-vol-sh2", "--backend", "gvisor", "-v", "it-vol-sh:/data:shared")
	e.ok(t, "exec", "it-vol-sh1", "--", "sh", "-c", "echo one > /data/one")
	e.ok(t, "exec", "it-vol-sh2", "--", "sh", "-c", "echo two > /data/two")
	if out := e.ok(t, "exec", "it-vol-sh2", "--", "cat", "/data/one").stdout; out != "one\n" {
		t.Errorf("gVisor reads %q", out)
	}
	if out := e.ok(t, "exec", "it-vol-sh1", "--", "cat", "/data/two").stdout; out != "two\n" {
		t.Errorf("runc reads %q", out)
	}
	r := e.ak(t, "sandbox", "create", "it-vol-sh3", "-v", "it-vol-sh:/data")
	if r.code == 0 || !strings.Contains(r.stderr, "needs it alone") {
		t.Errorf("a read-write use beside shared ones: %v", r)
	}
}

// TestGVisorVolume runs the volume story on gVisor.
func TestGVisorVolume(t *testing.T) {
	requireRunsc(t)
	testVolumeLifecycle(t, shared, "gvisor", "it-gvol")
}

// TestMicroVMVolume runs the volume story on microVMs (the volume a
// drive of each VM) and checks that a microVM cannot share one.
func TestMicroVMVolume(t *testing.T) {
	e := newMicroVMEnv(t)
	testVolumeLifecycle(t, e, "microvm", "vm-vol")
	r := e.ak(t, "run", "--backend", "microvm", "-v", "vm-vol:/data:shared", "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "cannot share a volume read-write") {
		t.Errorf("a shared use on a microVM: %v", r)
	}
	// The guest wrote the image's blocks: the host kernel never mounts it.
	if v := volumeInfo(t, e, "vm-vol"); !v.GuestWritten {
		t.Errorf("volume info after a microVM wrote it: %+v", v)
	}
	r = e.ak(t, "run", "--backend", "container", "-v", "vm-vol:/data:ro", "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "written by a microVM") {
		t.Errorf("a container mount of a volume a microVM wrote: %v", r)
	}
}

// TestVolumeRestarts: a daemon killed with SIGKILL comes back knowing
// which volume its re-adopted sandbox has read-write (a second writer is
// still refused), and a sandbox whose supervisor is killed releases its
// volume (unmounted, no loop device left) for the next one.
func TestVolumeRestarts(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	e.ok(t, "volume", "create", "it-vr", "-s", "16MB")
	info := e.create(t, "it-vr-holder", "-v", "it-vr:/data")
	e.ok(t, "exec", "it-vr-holder", "--", "sh", "-c", "echo before > /data/f && sync")
	pid, err := e.daemonPID()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return !alive(pid) }) {
		t.Fatalf("daemon %d survived SIGKILL", pid)
	}
	if got := e.info(t, "it-vr-holder"); got.Status != api.StatusRunning { // starts a new daemon
		t.Fatalf("the holder after the daemon restart: %+v", got)
	}
	r := e.ak(t, "sandbox", "create", "it-vr-second", "-v", "it-vr:/data")
	if r.code == 0 || !strings.Contains(r.stderr, `mounted read-write by sandbox "it-vr-holder"`) {
		t.Errorf("a second writer after the daemon restart: %v", r)
		e.ak(t, "sandbox", "remove", "it-vr-second")
	}

	sup, err := readPID(filepath.Join(e.sandboxDir(info.UUID), "supervisor.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(sup, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitFor(15*time.Second, func() bool { return e.info(t, "it-vr-holder").Status == api.StatusFailed }) {
		t.Fatalf("the holder is not failed after its supervisor was killed: %+v", e.info(t, "it-vr-holder"))
	}
	// At once: the start waits for the dead holder's cleanup to release
	// the volume.
	r = e.ok(t, "run", "-v", "it-vr:/data", "--", "cat", "/data/f")
	if r.stdout != "before\n" {
		t.Errorf("the next sandbox reads %q", r.stdout)
	}
	// The run's sandbox is torn down in the background.
	if !waitFor(15*time.Second, func() bool { return len(loopfs.Devices(e.h.Dir)) == 0 }) {
		t.Errorf("loop devices left after the holder's supervisor died and the run ended: %v", loopfs.Devices(e.h.Dir))
	}
}
