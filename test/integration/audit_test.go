package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentkernel/agentkernel/internal/supervisor"
	"github.com/agentkernel/agentkernel/pkg/api"
)

// auditRec is what the test reads of an audit record.
type auditRec struct {
	Seq      int64    `json:"seq"`
	Type     string   `json:"type"`
	Sandbox  string   `json:"sandbox"`
	Command  []string `json:"command"`
	ExitCode *int     `json:"exit_code"`
	Duration *int64   `json:"duration_ns"`
	BytesOut *int64   `json:"bytes_out"`
	EnvNames []string `json:"env_names"`
	Path     string   `json:"path"`
	Kind     string   `json:"kind"`
	Allowed  bool     `json:"allowed"`
	Rule     string   `json:"rule"`
}

// auditJSON runs `audit --json` with args and decodes its lines.
func auditJSON(t *testing.T, e *env, args ...string) ([]auditRec, string) {
	t.Helper()
	out := e.ok(t, append([]string{"--json", "audit", "-l", "10000"}, args...)...).stdout
	var recs []auditRec
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var r auditRec
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("audit --json line %q: %v", l, err)
		}
		recs = append(recs, r)
	}
	return recs, out
}

// findExec is the command_finished record whose argv starts with sh -c
// and whose script is script.
func findExec(recs []auditRec, script string) *auditRec {
	for i := range recs {
		r := &recs[i]
		if r.Type == "command_finished" && len(r.Command) == 3 && r.Command[2] == script {
			return r
		}
	}
	return nil
}

// lineOf is the 1-based line of p holding the record of seq.
func lineOf(t *testing.T, p string, seq int64) (int, [][]byte) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	for i, l := range lines {
		if bytes.HasPrefix(l, []byte(fmt.Sprintf(`{"seq":%d,`, seq))) {
			return i + 1, lines
		}
	}
	t.Fatalf("no seq %d in %s", seq, p)
	return 0, nil
}

// TestAudit: an exec whose environment holds a secret placeholder (and a
// secret value) is audited with its argv, exit code, duration and bytes
// out in the global and the sandbox's log, which never hold an
// environment value; the sandbox's log also holds its gateway's denied
// connection and the file it was given; `audit verify` passes on the
// untouched logs and names the record an edit or a deleted line broke,
// also after the sandbox's removal.
func TestAudit(t *testing.T) {
	requireEnv(t)
	e := newEnv(t)
	const secretValue = "it-audit-secret-value-7f3a9c"
	if r := e.akIn(t, strings.NewReader(secretValue+"\n"), "secret", "set", "AUDIT_KEY"); r.code != 0 {
		t.Fatal(r)
	}
	info := e.create(t, "au", "--secret", "AUDIT_KEY:api.example.com")
	const script = "printf hello; printf xy >&2; exit 3"
	// The CLI's exec takes no environment: the API's does.
	res, err := e.client(t).Exec(t.Context(), "au", api.ExecRequest{Command: []string{"sh", "-c", script},
		Env: []string{"TOKEN=" + secretPlaceholder("AUDIT_KEY"), "PASSWORD=" + secretValue}})
	if err != nil || res.ExitCode != 3 || res.Stdout != "hello" {
		t.Fatalf("exec: %+v %v", res, err)
	}
	// A connection the policy refuses (10.0.0.0/8 is forbidden).
	e.ak(t, "exec", "au", "--", "sh", "-c", "nc -w 2 10.0.0.1 22 </dev/null; wget -q -T 2 -O /dev/null http://10.0.0.1/; true")
	src := filepath.Join(t.TempDir(), "given.txt")
	os.WriteFile(src, []byte("x"), 0o644)
	e.ok(t, "cp", src, "au:/tmp/")

	checkExec := func(where string, recs []auditRec) {
		t.Helper()
		x := findExec(recs, script)
		if x == nil {
			t.Fatalf("%s: no record of the exec", where)
		}
		if x.Sandbox != "au" || x.ExitCode == nil || *x.ExitCode != 3 || x.Duration == nil || *x.Duration <= 0 || x.BytesOut == nil || *x.BytesOut != 7 ||
			strings.Join(x.EnvNames, ",") != "TOKEN,PASSWORD" {
			t.Errorf("%s: exec record %+v", where, *x)
		}
	}
	global, _ := auditJSON(t, e)
	checkExec("global log", global)

	// The sandbox's log gets its records from the daemon asynchronously.
	var local []auditRec
	if !waitFor(10*time.Second, func() bool {
		local, _ = auditJSON(t, e, "--sandbox", "au")
		for _, r := range local {
			if r.Type == "file_written" {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("the sandbox's log never got the file record: %+v", local)
	}
	checkExec("sandbox log", local)
	denied := false
	for _, r := range local {
		if r.Type == "network" && r.Kind == "connect" && !r.Allowed && strings.HasPrefix(r.Rule, "forbidden:") {
			denied = true
		}
	}
	if !denied {
		t.Errorf("no denied connection in the sandbox's log: %+v", local)
	}
	if out := e.ok(t, "audit", "au", "--denied").stdout; !strings.Contains(out, "10.0.0.1") || strings.Contains(out, " allowed ") {
		t.Errorf("audit au --denied:\n%s", out)
	}

	globalPath := filepath.Join(e.home, "audit", "audit.jsonl")
	localPath := filepath.Join(e.sandboxDir(info.UUID), supervisor.AuditLogFile)
	if p := strings.TrimSpace(e.ok(t, "audit", "--path").stdout); p != globalPath {
		t.Errorf("audit --path: %q, want %q", p, globalPath)
	}
	for _, p := range []string{globalPath, localPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secretValue)) {
			t.Errorf("%s holds the secret value", p)
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			if bytes.Contains(l, []byte(`"command_finished"`)) && bytes.Contains(l, []byte("placeholder")) {
				t.Errorf("%s: an exec record holds an environment value: %s", p, l)
			}
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", p, fi.Mode())
		}
	}

	// Untouched logs verify, against their live writers.
	for _, args := range [][]string{{"audit", "verify"}, {"audit", "verify", "--sandbox", "au"}} {
		if out := e.ok(t, args...).stdout; !strings.Contains(out, "ok: ") || !strings.Contains(out, "records verified") || strings.Contains(out, "not asked") {
			t.Errorf("%v: %s", args, out)
		}
	}

	// An edit of the global log (in place: its writer keeps appending)
	// is named, and undone.
	x := findExec(global, script)
	line, lines := lineOf(t, globalPath, x.Seq)
	t.Logf("the exec's record in the global log: %s", lines[line-1])
	orig := bytes.Join(lines, nil)
	edited := bytes.Replace(lines[line-1], []byte(`"exit_code":3`), []byte(`"exit_code":0`), 1)
	if bytes.Equal(edited, lines[line-1]) {
		t.Fatalf("no exit code in %s", lines[line-1])
	}
	writeAt(t, globalPath, orig, line, edited)
	wantBroken(t, e, fmt.Sprintf("line %d (seq %d): altered", line, x.Seq), "audit", "verify")
	writeAt(t, globalPath, orig, line, lines[line-1])
	e.ok(t, "audit", "verify")

	// A removed sandbox's log is kept, read and verified.
	e.ok(t, "sandbox", "remove", "au")
	kept := filepath.Join(e.home, "audit", "sandboxes", "au-"+info.UUID+".jsonl")
	if !waitFor(30*time.Second, func() bool { _, err := os.Stat(kept); return err == nil }) {
		t.Fatalf("no %s after the removal", kept)
	}
	if recs, _ := auditJSON(t, e, "--sandbox", "au"); findExec(recs, script) == nil {
		t.Errorf("the removed sandbox's log lost its exec record: %+v", recs)
	}
	e.ok(t, "audit", "verify", "au")
	lx := findExec(local, script)
	line, lines = lineOf(t, kept, lx.Seq)
	orig = bytes.Join(lines, nil)
	writeAt(t, kept, orig, line, bytes.Replace(lines[line-1], []byte(`"sh"`), []byte(`"sH"`), 1))
	wantBroken(t, e, fmt.Sprintf("line %d (seq %d): altered", line, lx.Seq), "audit", "verify", "--sandbox", "au")
	// Deleting the line instead: the next record names the gap.
	gone := append(append([][]byte{}, lines[:line-1]...), lines[line:]...)
	os.WriteFile(kept, bytes.Join(gone, nil), 0o600)
	wantBroken(t, e, fmt.Sprintf("line %d (seq %d): missing records: seq %d follows %d", line, lx.Seq+1, lx.Seq+1, lx.Seq-1), "audit", "verify", "--sandbox", "au")
	os.WriteFile(kept, orig, 0o600)
	e.ok(t, "audit", "verify", "--sandbox", "au")
	if v, err := e.client(t).VerifyAudit(t.Context(), "au"); err != nil || !v.OK || v.Live || v.Records < 5 {
		t.Errorf("GET /audit/verify?sandbox=au: %+v %v", v, err)
	}
}

// secretPlaceholder is what a sandbox's variable holds for a bound secret
// (see secrets.Placeholder).
func secretPlaceholder(name string) string { return "agentkernel-placeholder-" + name }

// writeAt writes orig with its line (1-based) replaced by repl (of the
// same length, so a live writer's offsets stay right).
func writeAt(t *testing.T, p string, orig []byte, line int, repl []byte) {
	t.Helper()
	lines := bytes.SplitAfter(orig, []byte("\n"))
	off := 0
	for _, l := range lines[:line-1] {
		off += len(l)
	}
	if len(repl) != len(lines[line-1]) {
		t.Fatalf("replacement of line %d changes its length", line)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(repl, int64(off)); err != nil {
		t.Fatal(err)
	}
}

// wantBroken runs a verify that must fail with want in its message.
func wantBroken(t *testing.T, e *env, want string, args ...string) {
	t.Helper()
	r := e.ak(t, args...)
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("%v: %v; want a failure naming %q", args, r, want)
	}
}
