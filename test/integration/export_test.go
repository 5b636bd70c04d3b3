package integration

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readTar returns the regular files (name → content) and all entry names
// of a tar stream, names without a leading "./" or "/".
func readTar(t *testing.T, r io.Reader) (map[string]string, []string) {
	t.Helper()
	files := map[string]string{}
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, names
		}
		if err != nil {
			t.Fatalf("reading the exported tar: %v", err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		names = append(names, name)
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[name] = string(b)
		}
	}
}

// TestSandboxExport exports a running sandbox made from an image, to a
// file and to stdout: its own changes are applied over the image (a new
// file, a deleted one, a replaced directory) and /proc, /sys, /dev and
// /.agentkernel are not in it.
func TestSandboxExport(t *testing.T) {
	requireEnv(t)
	busyboxBase(t, "it-export-base")
	shared.create(t, "it-export", "--image", "it-export-base")
	t.Cleanup(func() { shared.ak(t, "sandbox", "remove", "it-export") })
	shared.ok(t, "exec", "it-export", "--", "/bin/sh", "-c",
		"echo kept > /root/note && rm /bin/gone && rm -r /data && mkdir /data && echo new > /data/only && ls /proc/self >/dev/null")

	out := filepath.Join(t.TempDir(), "fs.tar")
	shared.ok(t, "sandbox", "export", "it-export", "-o", out)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files, names := readTar(t, f)
	check := func(how string, files map[string]string, names []string) {
		t.Helper()
		if files["root/note"] != "kept\n" || files["data/only"] != "new\n" || files["etc/passwd"] == "" {
			t.Errorf("%s: the sandbox's files are missing: %q", how, names)
		}
		for _, gone := range []string{"bin/gone", "data/old"} {
			if _, ok := files[gone]; ok {
				t.Errorf("%s: deleted file %s is in the export", how, gone)
			}
		}
		if b, ok := files["bin/busybox"]; !ok || len(b) < 100_000 {
			t.Errorf("%s: bin/busybox missing or short (%d bytes)", how, len(b))
		}
		for _, n := range names {
			top, _, _ := strings.Cut(n, "/")
			switch top {
			case "proc", "sys", "dev", ".agentkernel":
				t.Errorf("%s: %s is in the export", how, n)
			}
			if strings.Contains(n, ".wh.") {
				t.Errorf("%s: a whiteout entry %s is in the export", how, n)
			}
		}
	}
	check("-o FILE", files, names)

	r := shared.ok(t, "sandbox", "export", "it-export", "-o", "-")
	files, names = readTar(t, strings.NewReader(r.stdout))
	check("-o -", files, names)

	// Host-image sandboxes have no layers; a missing sandbox is not found;
	// a failed export leaves no file.
	shared.create(t, "it-export-host")
	t.Cleanup(func() { shared.ak(t, "sandbox", "remove", "it-export-host") })
	bad := filepath.Join(t.TempDir(), "bad.tar")
	r = shared.ak(t, "sandbox", "export", "it-export-host", "-o", bad)
	if r.code == 0 || !strings.Contains(r.stderr, "host image") {
		t.Errorf("exporting a host-image sandbox: %v", r)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed export left %s: %v", bad, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(bad)); len(entries) != 0 {
		t.Errorf("a failed export left files: %v", entries)
	}
	r = shared.ak(t, "sandbox", "export", "no-such-sandbox", "-o", bad)
	if r.code == 0 {
		t.Errorf("exporting a missing sandbox succeeded: %v", r)
	}
}
