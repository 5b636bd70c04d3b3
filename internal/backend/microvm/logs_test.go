package microvm

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestCappedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	c, err := openCapped(p, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		c.Write(bytes.Repeat([]byte{byte('a' + i)}, 30))
	}
	c.Write(bytes.Repeat([]byte("z"), 1000)) // larger than the cap
	c.Close()
	c.Close()
	cur, _ := os.ReadFile(p)
	old, _ := os.ReadFile(p + ".1")
	if len(cur) > 100 || len(old) > 100 {
		t.Fatalf("sizes %d and %d over the cap", len(cur), len(old))
	}
	if !bytes.HasSuffix(cur, []byte("zzz")) {
		t.Fatalf("the newest bytes are lost: %q", cur)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("write after Close")
	}
}
