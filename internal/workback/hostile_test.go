package workback

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// TestCollectRunsNothing gives the repository every hook and every
// program-running setting git has that the package's commands could
// reach, and checks that none of them ran: the tree came from a sandbox,
// and the host must not run anything because of it.
func TestCollectRunsNothing(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "a\n", ".gitattributes": "* filter=evil diff=evil\n"})
	markers := t.TempDir()
	scripts := t.TempDir()
	script := func(name string) string {
		p := filepath.Join(scripts, name)
		body := fmt.Sprintf("#!/bin/sh\ntouch %s/%s\nexec cat\n", markers, name)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hooksPath := filepath.Join(t.TempDir(), "hooks")
	os.Mkdir(hooksPath, 0o755)
	for _, hook := range []string{"pre-commit", "post-commit", "commit-msg", "reference-transaction", "post-checkout",
		"post-index-change", "pre-auto-gc", "post-rewrite", "fsmonitor-watchman"} {
		body := fmt.Sprintf("#!/bin/sh\ntouch %s/hook-%s\nexit 0\n", markers, hook)
		for _, dir := range []string{filepath.Join(repo, ".git", "hooks"), hooksPath} {
			if err := os.WriteFile(filepath.Join(dir, hook), []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	for key, value := range map[string]string{
		"core.hooksPath":      hooksPath,
		"core.fsmonitor":      script("fsmonitor"),
		"core.pager":          script("pager"),
		"pager.diff":          script("pager-diff"),
		"core.sshCommand":     script("ssh"),
		"core.editor":         script("editor"),
		"diff.external":       script("diff-external"),
		"diff.evil.textconv":  script("textconv"),
		"diff.evil.command":   script("diff-command"),
		"filter.evil.clean":   script("clean"),
		"filter.evil.smudge":  script("smudge"),
		"filter.evil.process": script("process"),
		"gpg.program":         script("gpg"),
		"commit.gpgSign":      "true",
		"credential.helper":   script("credential"),
	} {
		git(t, repo, "config", key, value)
	}
	write(t, repo, "a.txt", "a, edited by the user\n") // stat-dirty: filters would run

	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	ws := sandbox(t, packed(t, src, PackOptions{}))
	write(t, ws, "b.txt", "the agent's\n")
	write(t, ws, ".gitattributes", "* filter=evil diff=evil text eol=crlf\n")
	if _, err := Diff(ctx, src, bytes.NewReader(tarOf(t, ws)), TreeOptions{Root: "workspace"}); err != nil {
		t.Fatal(err)
	}
	res, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), collectOpts(t, "evil"))
	if err != nil {
		t.Fatal(err)
	}
	opts := collectOpts(t, "evil")
	opts.Replace = true
	write(t, ws, "c.txt", "more\n")
	if _, err := Collect(ctx, src, bytes.NewReader(tarOf(t, ws)), opts); err != nil {
		t.Fatal(err)
	}
	emptyDir(t, markers)
	if got := git(t, repo, "cat-file", "blob", res.Commit+":b.txt"); got != "the agent's\n" {
		t.Fatalf("b.txt = %q: no filter may touch the content", got)
	}

	// The traps are live: plain git runs them.
	if _, err := gitErr(repo, nil, "-c", "commit.gpgSign=false", "commit", "-q", "--allow-empty", "-m", "x"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"hook-pre-commit", "hook-reference-transaction"} {
		if _, err := os.Stat(filepath.Join(markers, m)); err != nil {
			t.Errorf("the test's %s did not run under plain git either: %v", m, err)
		}
	}
}

// hostileEntry is one entry of a hand-made archive.
type hostileEntry struct {
	typ      byte
	name     string
	link     string
	body     string
	size     int64 // if not 0, the header's size (the body may be shorter)
	mode     int64
	dev      int64
	noFinish bool
}

func hostileTar(t testing.TB, entries ...hostileEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		size := int64(len(e.body))
		if e.size != 0 {
			size = e.size
		}
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Size: size, Mode: mode, Devmajor: e.dev, Format: tar.FormatPAX}
		if e.typ == tar.TypeXGlobalHeader {
			h = &tar.Header{Typeflag: e.typ, PAXRecords: map[string]string{"comment": e.name}, Format: tar.FormatPAX}
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.size != 0 {
			b.WriteString(e.body) // a header promising more than follows
			return b.Bytes()
		}
		if e.typ != tar.TypeReg {
			continue
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	return b.Bytes()
}

// failAfter fails any read past its first n bytes: an archive that is
// read no further than its headers.
type failAfter struct {
	r io.Reader
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("read past the header")
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

func TestCollectHostileTrees(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "a\n"})
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	canary := t.TempDir()
	objects := filepath.Join(repo, ".git", "objects")
	before := fingerprint(t, objects)
	state := stateOf(t, repo)

	many := make([]hostileEntry, 11)
	for i := range many {
		many[i] = hostileEntry{typ: tar.TypeReg, name: fmt.Sprintf("f%d", i)}
	}
	twoGB := hostileTar(t, hostileEntry{typ: tar.TypeReg, name: "huge.bin", size: 2 << 30})
	for _, c := range []struct {
		name   string
		stream []byte
		limits Limits
		class  error
		say    string
	}{
		{"dotdot", hostileTar(t, hostileEntry{typ: tar.TypeReg, name: "../x", body: "x"}), Limits{}, errdefs.ErrInvalidArgument, `".."`},
		{"deep dotdot", hostileTar(t, hostileEntry{typ: tar.TypeReg, name: "a/../../" + filepath.Base(canary) + "/x", body: "x"}), Limits{}, errdefs.ErrInvalidArgument, `".."`},
		{"absolute", hostileTar(t, hostileEntry{typ: tar.TypeReg, name: canary + "/x", body: "x"}), Limits{}, errdefs.ErrInvalidArgument, "absolute"},
		{"etc", hostileTar(t, hostileEntry{typ: tar.TypeReg, name: "/etc/x", body: "x"}), Limits{}, errdefs.ErrInvalidArgument, "absolute"},
		{"through a symlink", hostileTar(t,
			hostileEntry{typ: tar.TypeSymlink, name: "l", link: canary},
			hostileEntry{typ: tar.TypeReg, name: "l/x", body: "x"}), Limits{}, errdefs.ErrInvalidArgument, "symlink"},
		{"through a file", hostileTar(t,
			hostileEntry{typ: tar.TypeReg, name: "f", body: "x"},
			hostileEntry{typ: tar.TypeReg, name: "f/x", body: "x"}), Limits{}, errdefs.ErrInvalidArgument, "not a directory"},
		{"hard link out", hostileTar(t, hostileEntry{typ: tar.TypeLink, name: "passwd", link: "/etc/passwd"}), Limits{}, errdefs.ErrInvalidArgument, "absolute"},
		{"hard link to nothing", hostileTar(t, hostileEntry{typ: tar.TypeLink, name: "h", link: "a.txt"}), Limits{}, errdefs.ErrInvalidArgument, "hard link"},
		{"hard link to a symlink", hostileTar(t,
			hostileEntry{typ: tar.TypeSymlink, name: "l", link: "/etc/passwd"},
			hostileEntry{typ: tar.TypeLink, name: "h", link: "l"}), Limits{}, errdefs.ErrInvalidArgument, "hard link"},
		{"char device", hostileTar(t, hostileEntry{typ: tar.TypeChar, name: "null", dev: 1}), Limits{}, errdefs.ErrInvalidArgument, "device"},
		{"block device", hostileTar(t, hostileEntry{typ: tar.TypeBlock, name: "sda", dev: 8}), Limits{}, errdefs.ErrInvalidArgument, "device"},
		{"huge file", twoGB, Limits{}, errdefs.ErrTooLarge, "huge.bin"},
		{"over the total", hostileTar(t,
			hostileEntry{typ: tar.TypeReg, name: "a", body: "12345"},
			hostileEntry{typ: tar.TypeReg, name: "b", body: "12345"}), Limits{MaxBytes: 9}, errdefs.ErrTooLarge, "bytes"},
		{"too many entries", hostileTar(t, many...), Limits{MaxEntries: 10}, errdefs.ErrTooLarge, "entries"},
		{"truncated", hostileTar(t, hostileEntry{typ: tar.TypeReg, name: "cut", body: "abc", size: 100}), Limits{}, errdefs.ErrInvalidArgument, "archive"},
		{"not a tar", []byte(strings.Repeat("garbage!", 200)), Limits{}, errdefs.ErrInvalidArgument, "tar"},
		{"symlink over a directory", hostileTar(t,
			hostileEntry{typ: tar.TypeReg, name: "d/x", body: "x"},
			hostileEntry{typ: tar.TypeSymlink, name: "d", link: canary}), Limits{}, errdefs.ErrInvalidArgument, "in the way"},
		{"bad symlink", hostileTar(t, hostileEntry{typ: tar.TypeSymlink, name: "l", link: ""}), Limits{}, errdefs.ErrInvalidArgument, "symlink"},
		{"a file as the root", hostileTar(t, hostileEntry{typ: tar.TypeReg, name: ".", body: "x"}), Limits{}, errdefs.ErrInvalidArgument, "workspace itself"},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := collectOpts(t, "hostile")
			opts.Root = ""
			opts.Limits = c.limits
			var r io.Reader = bytes.NewReader(c.stream)
			if c.name == "huge file" {
				r = &failAfter{r: r, n: len(c.stream)} // all there is: the header
			}
			_, err := Collect(ctx, src, r, opts)
			if !errors.Is(err, c.class) || !strings.Contains(err.Error(), c.say) {
				t.Fatalf("Collect = %v, want %v saying %q", err, c.class, c.say)
			}
			emptyDir(t, opts.TempDir)
			// Diff reads by the same rules.
			if _, err := Diff(ctx, src, bytes.NewReader(c.stream), TreeOptions{Limits: c.limits}); !errors.Is(err, c.class) {
				t.Fatalf("Diff = %v, want %v", err, c.class)
			}
		})
	}
	emptyDir(t, canary)
	if _, err := gitErr(repo, nil, "rev-parse", "--verify", "-q", "agentkernel/hostile"); err == nil {
		t.Fatal("a branch was made")
	}
	if fingerprint(t, objects) != before {
		t.Fatal("objects were added to the repository")
	}
	if stateOf(t, repo) != state {
		t.Fatal("the repository changed")
	}
}

// TestCollectSkips checks what is skipped with a note rather than
// refused: .git in any spelling, FIFOs.
func TestCollectSkips(t *testing.T) {
	repo := newRepo(t, map[string]string{"a.txt": "a\n"})
	src, err := Snapshot(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	stream := hostileTar(t,
		hostileEntry{typ: tar.TypeReg, name: "a.txt", body: "a\n"},
		hostileEntry{typ: tar.TypeReg, name: ".git/hooks/pre-commit", body: "#!/bin/sh\n", mode: 0o755},
		hostileEntry{typ: tar.TypeReg, name: "sub/.GIT/config", body: "[core]\n"},
		hostileEntry{typ: tar.TypeSymlink, name: "git~1", link: "/"},
		hostileEntry{typ: tar.TypeReg, name: "x/.git. /config", body: "[core]\n"},
		hostileEntry{typ: tar.TypeFifo, name: "pipe"},
		hostileEntry{typ: tar.TypeReg, name: "ok.txt", body: "ok\n", mode: 0o6755},
		hostileEntry{typ: tar.TypeXGlobalHeader, name: "pax_global_header"},
	)
	opts := collectOpts(t, "skips")
	opts.Root = ""
	res, err := Collect(ctx, src, bytes.NewReader(stream), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := git(t, repo, "ls-tree", "-r", res.Branch); !strings.Contains(got, "100755 blob") || strings.Count(got, "\n") != 2 {
		t.Fatalf("tree:\n%s", got)
	}
	if len(res.Notes) != 5 {
		t.Fatalf("notes: %q", res.Notes)
	}
}
