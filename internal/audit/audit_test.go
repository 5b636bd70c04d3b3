package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newLog(t *testing.T, opts Options, n int) (*Writer, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := Open(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	for i := range n {
		if err := w.Append(Entry{Type: "command_finished", Sandbox: "dev", Fields: map[string]any{"i": i, "argv": []string{"echo", "hi"}, "seq": 999}}); err != nil {
			t.Fatal(err)
		}
	}
	return w, p
}

func lines(t *testing.T, p string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))
}

func writeLines(t *testing.T, p string, ls [][]byte) {
	t.Helper()
	if err := os.WriteFile(p, bytes.Join(ls, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mustBreak verifies and wants a *Broken at line with reason containing want.
func mustBreak(t *testing.T, head *Head, line int, want string, files ...string) *Broken {
	t.Helper()
	_, err := Verify(head, files...)
	var b *Broken
	if !errors.As(err, &b) {
		t.Fatalf("Verify = %v, want a broken record", err)
	}
	if b.Line != line || !strings.Contains(b.Reason, want) {
		t.Fatalf("Verify = %v, want line %d, reason with %q", b, line, want)
	}
	return b
}

func TestGoodLogVerifies(t *testing.T) {
	w, p := newLog(t, Options{}, 10)
	h := w.Head()
	res, err := Verify(&h, Files(p)...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 11 || res.First != 1 || res.Last != 11 || res.LastHash != h.Hash {
		t.Fatalf("result %+v, head %+v", res, h)
	}
	// A reserved key in the fields does not override the writer's.
	if l := lines(t, p)[1]; !bytes.HasPrefix(l, []byte(`{"seq":2,`)) || bytes.Contains(l, []byte("999")) {
		t.Fatalf("line 2: %s", l)
	}
}

func TestAlteredByte(t *testing.T) {
	_, p := newLog(t, Options{}, 5)
	ls := lines(t, p)
	ls[3] = bytes.Replace(ls[3], []byte(`"echo"`), []byte(`"ecHo"`), 1)
	writeLines(t, p, ls)
	b := mustBreak(t, nil, 4, "altered", p)
	if b.Seq != 4 {
		t.Fatalf("seq %d", b.Seq)
	}
}

func TestAlteredAndRehashed(t *testing.T) {
	// An attacker who recomputes the altered record's hash breaks the
	// next record's prev.
	_, p := newLog(t, Options{}, 5)
	ls := lines(t, p)
	d, err := decode(bytes.TrimSuffix(ls[2], []byte("\n")))
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Replace(d.body, []byte(`"hi"`), []byte(`"ho"`), 1)
	sum := chain(d.prev, body)
	line := append(body[:len(body)-1:len(body)-1], []byte(`,"hash":"`+hexs(sum[:])+`"}`+"\n")...)
	ls[2] = line
	writeLines(t, p, ls)
	mustBreak(t, nil, 4, "prev is not the hash", p)
}

func TestDeletedLine(t *testing.T) {
	_, p := newLog(t, Options{}, 5)
	ls := lines(t, p)
	ls = append(ls[:2], ls[3:]...)
	writeLines(t, p, ls)
	mustBreak(t, nil, 3, "missing records: seq 4 follows 2", p)
}

func TestSwappedLines(t *testing.T) {
	_, p := newLog(t, Options{}, 5)
	ls := lines(t, p)
	ls[2], ls[3] = ls[3], ls[2]
	writeLines(t, p, ls)
	mustBreak(t, nil, 3, "missing records", p)
}

func TestTruncatedHead(t *testing.T) {
	_, p := newLog(t, Options{}, 5)
	ls := lines(t, p)
	writeLines(t, p, ls[2:])
	mustBreak(t, nil, 1, "head was cut off", p)
}

func TestTruncatedTail(t *testing.T) {
	w, p := newLog(t, Options{}, 5)
	ls := lines(t, p)
	writeLines(t, p, ls[:4])
	// Without the writer's head the shorter log is a valid log...
	if _, err := Verify(nil, p); err != nil {
		t.Fatal(err)
	}
	// ...with it, the cut is found.
	h := w.Head()
	mustBreak(t, &h, 5, "truncated", p)
}

func TestMalformedLine(t *testing.T) {
	_, p := newLog(t, Options{}, 3)
	ls := lines(t, p)
	ls[1] = []byte("not json\n")
	writeLines(t, p, ls)
	mustBreak(t, nil, 2, "malformed", p)
}

func TestRotationContinuesChain(t *testing.T) {
	w, p := newLog(t, Options{MaxSize: 2048}, 40)
	files := Files(p)
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	h := w.Head()
	res, err := Verify(&h, files...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Last != h.Seq || res.First == 1 {
		t.Fatalf("result %+v (the oldest file should have been replaced)", res)
	}
	first := lines(t, p)[0]
	if !bytes.Contains(first, []byte(`"type":"`+TypeRotated+`"`)) {
		t.Fatalf("first line after rotation: %s", first)
	}
	for _, f := range files {
		if fi, _ := os.Stat(f); fi.Size() > 2048 {
			t.Fatalf("%s is %d bytes", f, fi.Size())
		}
	}
	// The boundary is checked: the newer file alone verifies (its first
	// record is a rotation), but dropping the older file's last record
	// breaks the link.
	ls := lines(t, files[0])
	writeLines(t, files[0], ls[:len(ls)-2])
	mustBreak(t, nil, 1, "missing records", files...)
}

func TestResumeAfterReopen(t *testing.T) {
	w, p := newLog(t, Options{}, 3)
	h := w.Head()
	w.Close()
	w2, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if w2.Head() != h {
		t.Fatalf("head %+v after reopen, want %+v", w2.Head(), h)
	}
	w2.Append(Entry{Type: "x"})
	h2 := w2.Head()
	if res, err := Verify(&h2, p); err != nil || res.Records != 5 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestTornTail(t *testing.T) {
	w, p := newLog(t, Options{}, 3)
	w.Close()
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":5,"time":"2026-`)
	f.Close()
	if _, err := Verify(nil, p); err == nil {
		t.Fatal("a torn tail verifies")
	}
	w2, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	w2.Append(Entry{Type: "x"})
	res, err := Verify(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	ls := lines(t, p)
	if res.Records != 6 || !bytes.Contains(ls[4], []byte(`"type":"`+TypeTornTail+`"`)) || !bytes.Contains(ls[4], []byte(`"dropped_bytes":22`)) {
		t.Fatalf("%+v\n%s", res, ls[4])
	}
}

func TestBrokenLastLineStartsNewChain(t *testing.T) {
	w, p := newLog(t, Options{Now: func() time.Time { return time.Unix(1000, 0) }}, 3)
	w.Close()
	ls := lines(t, p)
	ls[3] = []byte("garbage\n")
	writeLines(t, p, ls)
	w2, err := Open(p, Options{Now: func() time.Time { return time.Unix(1000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	l := lines(t, p)[0]
	if !bytes.Contains(l, []byte(`"previous_log":"audit.jsonl.broken-1000"`)) {
		t.Fatalf("%s", l)
	}
	if _, err := os.Stat(p + ".broken-1000"); err != nil {
		t.Fatal(err)
	}
}

func TestOversizedRecord(t *testing.T) {
	w, p := newLog(t, Options{}, 0)
	if err := w.Append(Entry{Type: "big", Fields: map[string]any{"x": strings.Repeat("a", MaxLine)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(nil, p); err != nil {
		t.Fatal(err)
	}
	if l := lines(t, p)[1]; !bytes.Contains(l, []byte("fields_dropped")) {
		t.Fatalf("%.200s", l)
	}
}

func TestLongLineIsMalformed(t *testing.T) {
	_, p := newLog(t, Options{}, 2)
	ls := lines(t, p)
	ls = append(ls[:2], append([][]byte{[]byte(strings.Repeat("x", 3*MaxLine) + "\n")}, ls[2:]...)...)
	writeLines(t, p, ls)
	mustBreak(t, nil, 3, "too long", p)
}

func TestRead(t *testing.T) {
	_, p := newLog(t, Options{}, 3)
	var types []string
	Read(func(r Record) bool { types = append(types, r.Type); return true }, p)
	if strings.Join(types, ",") != TypeStart+",command_finished,command_finished,command_finished" {
		t.Fatal(types)
	}
}

// TestVerifyStopsAtHead: what the writer appends after its head was
// taken, even a line still being written, does not fail a verify.
func TestVerifyStopsAtHead(t *testing.T) {
	w, p := newLog(t, Options{}, 3)
	h := w.Head()
	w.Append(Entry{Type: "later"})
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":6,"ti`)
	f.Close()
	res, err := Verify(&h, p)
	if err != nil || res.Last != h.Seq {
		t.Fatalf("%+v %v", res, err)
	}
}
