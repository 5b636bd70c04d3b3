package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzVerify feeds hostile files to the verifier and the reader: they
// must not panic, and a file Verify accepts must read back as records.
func FuzzVerify(f *testing.F) {
	dir := f.TempDir()
	p := filepath.Join(dir, "seed.jsonl")
	w, err := Open(p, Options{})
	if err != nil {
		f.Fatal(err)
	}
	w.Append(Entry{Type: "command_finished", Sandbox: "dev", Fields: map[string]any{"argv": []string{"ls"}}})
	w.Close()
	seed, _ := os.ReadFile(p)
	f.Add(seed)
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"prev":"","hash":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v := verifier{}
		err := v.file("a.jsonl", bytes.NewReader(b))
		res, ferr := v.finish(&Head{Seq: 3, Hash: "x"})
		n := 0
		readFrom(bytes.NewReader(b), func(Record) bool { n++; return true })
		if err == nil && n != res.Records {
			t.Fatalf("verified %d records, read %d", res.Records, n)
		}
		var br *Broken
		if err != nil && !errors.As(err, &br) || ferr != nil && !errors.As(ferr, &br) {
			t.Fatalf("not a *Broken: %v %v", err, ferr)
		}
	})
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
