package fault

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/testutil/akhome"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// loopHome mounts a fresh ext4 filesystem of sizeMB on a loop device and
// returns a directory on it for a home; it is unmounted and removed when
// t ends (after the home's own cleanup, which runs later-registered first).
func loopHome(t *testing.T, sizeMB int) string {
	t.Helper()
	for _, bin := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip(bin + " is not installed (e2fsprogs, mount): the disk-full fault needs a loop-mounted filesystem")
		}
	}
	base, err := os.MkdirTemp("", "akfltdisk")
	if err != nil {
		t.Fatal(err)
	}
	img, mnt := filepath.Join(base, "disk.img"), filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if f, err := os.Create(img); err != nil {
		t.Fatal(err)
	} else if err := f.Truncate(int64(sizeMB) << 20); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount a filesystem here (%v: %s): the disk-full fault needs one", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
			exec.Command("umount", "-l", mnt).Run()
		}
		os.RemoveAll(base)
	})
	return mnt
}

// fill writes a file at p until the filesystem is full, and returns a
// function that frees the space again.
func fill(t *testing.T, p string) func() {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for {
		if _, err = f.Write(buf); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", p, err)
	}
	// The last blocks, smaller than the buffer.
	for n := 4096; n > 0; n /= 2 {
		for {
			if _, err := f.Write(buf[:n]); err != nil {
				break
			}
		}
	}
	f.Sync()
	f.Close()
	return func() { os.Remove(p) }
}

var diskFullWords = regexp.MustCompile(`(?i)no space left|disk (is )?full|out of space|disk was made read-only`)

// checkFull checks what the user is told of an operation on a full disk:
// it either works, or its error names the sandbox and says the disk is
// full. It returns the summary for the report.
func checkFull(t *testing.T, r result, name string) string {
	t.Helper()
	if r.code == 0 {
		return "completed (exit 0)"
	}
	msg := strings.TrimSpace(r.stderr)
	if !strings.Contains(msg, name) {
		t.Errorf("the error does not name %s: %v", name, r)
	}
	if !diskFullWords.MatchString(msg) {
		t.Errorf("the error does not say the disk is full: %v", r)
	}
	if internalNoise.MatchString(msg) {
		t.Errorf("the error is a transport's message: %v", r)
	}
	return "exit " + strconv.Itoa(r.code) + ": " + oneLine(msg)
}

// TestDiskFull puts the home on a small filesystem, fills it, and runs
// every kind of operation: a write inside the sandbox, an exec, a copy
// in, a create, a snapshot, a daemon restart. Then it frees the space and
// checks that everything is as listed, works again and leaves nothing.
func TestDiskFull(t *testing.T) {
	requireEnv(t)
	mnt := loopHome(t, 96)
	f := newFenv(t, mnt)
	f.start("")
	f.ok("image", "import", "fbox", imageDir)
	name := "f-disk"
	f.ok(append([]string{"sandbox", "create", name}, createFlags("container")...)...)
	f.onlySandboxUUID()
	f.ok("exec", name, "--", "sh", "-c", "echo kept > /root/keep && sync")

	free := fill(t, filepath.Join(mnt, "filler"))
	defer free()

	type op struct {
		point string
		args  []string
		stdin io.Reader
		check func(*testing.T, result) string
	}
	in := filepath.Join(t.TempDir(), "in.bin")
	os.WriteFile(in, bytes.Repeat([]byte("x"), 4<<20), 0o644)
	ops := []op{
		{"exec: write in the sandbox", []string{"exec", name, "--", "sh", "-c", "dd if=/dev/zero of=/root/big bs=1M count=8 conv=fsync 2>&1; echo rc=$?"}, nil, func(t *testing.T, r result) string {
			// The command runs; its own write fails, and it is told so.
			// (The sandbox's disk is a sparse image on the home: an
			// unsynced write lands in the page cache and fails only at
			// write-back, which no process hears; ext4 then makes the
			// disk read-only. A synced write is told ENOSPC.)
			if r.code != 0 || !strings.Contains(r.stdout, "No space left on device") || strings.Contains(r.stdout, "rc=0") {
				t.Errorf("a write inside the sandbox on a full disk: %v", r)
			}
			return "the command runs; its write fails with ENOSPC (dd: No space left on device)"
		}},
		{"exec: echo", []string{"exec", name, "--", "echo", "still"}, nil, func(t *testing.T, r result) string {
			if r.code == 0 && r.stdout != "still\n" {
				t.Errorf("exec on a full disk: %v", r)
			}
			return checkFull(t, r, name)
		}},
		{"cp: file in", []string{"cp", in, name + ":/root/in.bin"}, nil, func(t *testing.T, r result) string { return checkFull(t, r, name) }},
		{"create", append([]string{"sandbox", "create", "f-disk-new"}, createFlags("container")...), nil, func(t *testing.T, r result) string { return checkFull(t, r, "f-disk-new") }},
		{"snapshot", []string{"snapshot", "take", name, "-n", "f-disk-snap"}, nil, func(t *testing.T, r result) string { return checkFull(t, r, name) }},
	}
	for _, o := range ops {
		t.Run(o.point, func(t *testing.T) {
			r := f.bg(o.stdin, o.args...).wait()
			seen := o.check(t, r)
			record(t, row{fault: "home's disk full", point: o.point, backend: "container", seen: seen, after: "(checked after the space is freed)"})
		})
	}

	// A daemon restart on a full disk.
	f.stopDaemon()
	up, out := f.tryStart()
	seen := "the daemon starts"
	if !up {
		seen = "the daemon refuses to start: " + oneLine(lastLines(out, 3))
		if !diskFullWords.MatchString(out) {
			t.Errorf("a daemon that cannot start on a full disk does not say so:\n%s", out)
		}
	}
	record(t, row{fault: "home's disk full", point: "daemon restart", backend: "container", seen: seen, after: "(checked after the space is freed)"})

	free()
	if !up {
		f.start("")
	} else {
		f.restart()
	}
	// The failed write-back made the sandbox's disk read-only: its status
	// says so, and a stop and start (ext4 recovers its journal at mount)
	// repairs it.
	// (sync: the journal's commit, which is what fails, happens now.)
	repaired := ""
	if r := f.ak("exec", name, "--", "sh", "-c", "sync; touch /root/probe"); r.code != 0 {
		if !strings.Contains(r.stderr, "disk was made read-only") {
			t.Errorf("a write to a disk made read-only is not explained: %v", r)
		}
		if l := f.ak("sandbox", "list"); !strings.Contains(l.stdout, api.DiskReadOnly) {
			t.Errorf("the list does not show the disk read-only: %v", l)
		}
		f.ok("sandbox", "stop", name)
		f.ok("sandbox", "start", name)
		repaired = "; its disk was read-only (said by the exec's error and the list) until a stop and start"
	}
	after := f.checkConsistent(name, wantListed) + repaired
	if _, ok := find(f.list(), "f-disk-new"); ok {
		after += "; f-disk-new listed (" + f.checkConsistent("f-disk-new", wantEither) + ")"
	}
	r := f.ak("snapshot", "inspect", "f-disk-snap")
	if r.code == 0 {
		after += "; " + checkSnapshot(t, f, "f-disk-snap", r)
	}
	// Everything works again.
	f.ok("exec", name, "--", "sh", "-c", "dd if=/dev/zero of=/root/big bs=1M count=8 && rm /root/big")
	f.ok(append([]string{"sandbox", "create", "f-disk-2"}, createFlags("container")...)...)
	f.ok("exec", "f-disk-2", "--", "true")
	record(t, row{fault: "home's disk full", point: "space freed", backend: "container", seen: "every operation works again", after: after})
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// lockStore holds an exclusive lock on the store's database from another
// process (sqlite3's shell, in a transaction it keeps open) until the
// returned function is called.
func lockStore(t *testing.T, db string) func() {
	t.Helper()
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("sqlite3 is not installed (apt-get install sqlite3): the locked-store fault needs another process to lock the database")
	}
	cmd := exec.Command("sqlite3", db)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "BEGIN EXCLUSIVE;\nSELECT 'locked';\n")
	if !akhome.WaitFor(10*time.Second, func() bool { return strings.Contains(out.String(), "locked") }) {
		t.Fatalf("sqlite3 did not take the lock: %s", out.String())
	}
	return func() {
		io.WriteString(stdin, "ROLLBACK;\n.quit\n")
		stdin.Close()
		cmd.Wait()
	}
}

var lockedWords = regexp.MustCompile(`(?i)locked|busy`)

// TestStoreLocked has another process hold the store's write lock (as a
// backup tool or a stray sqlite3 shell would) while the daemon is asked to
// read, exec and create; then releases it and checks that all is as
// listed and works.
func TestStoreLocked(t *testing.T) {
	requireEnv(t)
	f := newFenv(t, "")
	f.start("")
	f.ok("image", "import", "fbox", imageDir)
	name := "f-lock"
	f.ok(append([]string{"sandbox", "create", name}, createFlags("container")...)...)
	f.onlySandboxUUID()
	f.ok("exec", name, "--", "sh", "-c", "echo kept > /root/keep && sync")

	unlock := lockStore(t, f.h.Layout().Database())
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	for _, o := range []struct {
		point string
		args  []string
		who   string
	}{
		{"list", []string{"sandbox", "list"}, ""},
		{"exec", []string{"exec", name, "--", "echo", "still"}, name},
		{"create", append([]string{"sandbox", "create", "f-lock-new"}, createFlags("container")...), "f-lock-new"},
	} {
		t.Run(o.point, func(t *testing.T) {
			r := f.ak(o.args...)
			seen := "completed (exit 0)"
			if r.code != 0 {
				msg := strings.TrimSpace(r.stderr)
				seen = "exit " + strconv.Itoa(r.code) + ": " + oneLine(msg)
				if o.who == "" {
					t.Errorf("%s fails while the store is locked: %v", o.point, r)
				} else if !strings.Contains(msg, o.who) || !lockedWords.MatchString(msg) {
					t.Errorf("the error does not name %s and say the store is locked: %v", o.who, r)
				}
			} else if o.point == "exec" && r.stdout != "still\n" {
				t.Errorf("exec while the store is locked: %v", r)
			}
			seen += " (" + r.took.Round(100*time.Millisecond).String() + ")"
			record(t, row{fault: "store locked by another process", point: o.point, backend: "container", seen: seen, after: "(checked after the lock is released)"})
		})
	}
	unlock()
	locked = false
	f.restart()
	after := f.checkConsistent(name, wantListed)
	if _, ok := find(f.list(), "f-lock-new"); ok {
		after += "; f-lock-new " + f.checkConsistent("f-lock-new", wantEither)
	}
	f.ok(append([]string{"sandbox", "create", "f-lock-2"}, createFlags("container")...)...)
	record(t, row{fault: "store locked by another process", point: "lock released", backend: "container", seen: "every operation works again", after: after})
}

var corruptWords = regexp.MustCompile(`(?i)corrupt|malformed|not a database`)

// TestStoreCorrupt stops the daemon (its sandbox running on), damages the
// store's database file, and starts the daemon again, by the CLI as a
// user would: the daemon must refuse to start with an error that names
// the file and says it is damaged, and must not touch the sandbox, which
// runs on; once the file is restored from a copy, the sandbox is adopted
// again with its files.
func TestStoreCorrupt(t *testing.T) {
	requireEnv(t)
	for _, how := range []string{"header", "pages"} {
		t.Run(how, func(t *testing.T) {
			f := newFenv(t, "")
			f.start("")
			f.ok("image", "import", "fbox", imageDir)
			name := "f-corrupt-" + how
			f.ok(append([]string{"sandbox", "create", name}, createFlags("container")...)...)
			uuid := f.onlySandboxUUID()
			f.ok("exec", name, "--", "sh", "-c", "echo kept > /root/keep && sync")
			// Some rows and events, so the file has pages past the first.
			for i := 0; i < 20; i++ {
				f.ok("exec", name, "--", "true")
			}
			f.stopDaemon()
			db := f.h.Layout().Database()
			orig, err := os.ReadFile(db)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(db + "-wal"); err == nil {
				t.Fatalf("a stopped daemon left %s-wal: its last writes would be in it", db)
			}
			bad := append([]byte(nil), orig...)
			switch how {
			case "header":
				copy(bad, bytes.Repeat([]byte{0x5a}, 100))
			case "pages":
				if len(bad) < 3*4096 {
					t.Fatalf("the database is only %d bytes", len(bad))
				}
				for i := 4096; i < len(bad); i++ {
					bad[i] = byte(i * 7)
				}
			}
			if err := os.WriteFile(db, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			// The user's next command starts a daemon.
			r := f.ak("sandbox", "list")
			seen := "exit " + strconv.Itoa(r.code) + ": " + oneLine(r.stderr)
			if r.code == 0 {
				seen = "completed (exit 0): " + oneLine(r.stdout)
				t.Errorf("a daemon on a damaged store answered: %v", r)
			} else if !corruptWords.MatchString(r.stderr) || !strings.Contains(r.stderr, "state.db") {
				t.Errorf("the error does not say the store (state.db) is damaged: %v", r)
			}
			if pid, err := f.h.DaemonPID(); err == nil && akhome.Alive(pid) && akhome.SocketAnswers(f.h.Socket()) {
				t.Errorf("a daemon (pid %d) runs on the damaged store", pid)
				syscall.Kill(pid, syscall.SIGTERM)
			}
			if !alivePID(filepath.Join(f.h.SandboxDir(uuid), "supervisor.pid")) {
				t.Errorf("the sandbox's supervisor did not survive the daemon's refusal")
			}
			// The user restores the file from a copy.
			if err := os.WriteFile(db, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove(db + "-wal")
			os.Remove(db + "-shm")
			f.start("")
			after := f.checkConsistent(name, wantListed)
			record(t, row{fault: "store file corrupt (" + how + ")", point: "daemon start", backend: "container", seen: seen, after: "restored from a copy: " + after})
		})
	}
}
