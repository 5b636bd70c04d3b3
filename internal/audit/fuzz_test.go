package audit

import (
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
		p := filepath.Join(t.TempDir(), "a.jsonl")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := Verify(nil, p)
		n := 0
		Read(func(Record) bool { n++; return true }, p)
		if err == nil && n != res.Records {
			t.Fatalf("verified %d records, read %d", res.Records, n)
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
