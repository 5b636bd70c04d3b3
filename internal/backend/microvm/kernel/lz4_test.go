package kernel

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func legacyFrame(blocks ...[]byte) []byte {
	out := binary.LittleEndian.AppendUint32(nil, lz4LegacyMagic)
	for _, b := range blocks {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(b)))
		out = append(out, b...)
	}
	return out
}

func TestLZ4Block(t *testing.T) {
	// "abcabcabcabc": 3 literals, then a match of 9 at offset 3.
	// The final sequence carries literals only: token 0x10 and 'x'.
	blk := []byte{0x35, 'a', 'b', 'c', 3, 0, 0x10, 'x'}
	got, err := DecompressLZ4Legacy(legacyFrame(blk), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "abcabcabcabcx" {
		t.Fatalf("got %q", got)
	}
	// With the kernel's size trailer.
	f := binary.LittleEndian.AppendUint32(legacyFrame(blk), 13)
	if _, err := DecompressLZ4Legacy(f, 1<<20); err != nil {
		t.Fatal(err)
	}
	f = binary.LittleEndian.AppendUint32(legacyFrame(blk), 14)
	if _, err := DecompressLZ4Legacy(f, 1<<20); err == nil {
		t.Fatal("a wrong size trailer was accepted")
	}
	// An offset reaching before the block is refused.
	if _, err := DecompressLZ4Legacy(legacyFrame([]byte{0x15, 'a', 5, 0, 0x10, 'x'}), 1<<20); err == nil {
		t.Fatal("an out-of-range offset was accepted")
	}
	// The limit holds.
	if _, err := DecompressLZ4Legacy(legacyFrame(blk), 5); err == nil {
		t.Fatal("output over the limit was accepted")
	}
}

// TestLZ4AgainstTool compresses with the lz4 command (legacy format, as the
// kernel build does) and checks the round trip.
func TestLZ4AgainstTool(t *testing.T) {
	lz4, err := exec.LookPath("lz4")
	if err != nil {
		t.Skip("lz4 command not installed (apt-get install lz4)")
	}
	var in bytes.Buffer
	for i := 0; i < 300000; i++ {
		in.WriteString("line ")
		in.WriteByte(byte('a' + i%26))
		in.WriteByte(byte(i * 7))
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "in")
	os.WriteFile(src, in.Bytes(), 0o600)
	if out, err := exec.Command(lz4, "-q", "-l", "-9", src, src+".lz4").CombinedOutput(); err != nil {
		t.Fatalf("lz4: %v %s", err, out)
	}
	comp, _ := os.ReadFile(src + ".lz4")
	got, err := DecompressLZ4Legacy(comp, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, in.Bytes()) {
		t.Fatalf("round trip differs: %d bytes vs %d", len(got), in.Len())
	}
}

func FuzzDecompressLZ4Legacy(f *testing.F) {
	f.Add(legacyFrame([]byte{0x35, 'a', 'b', 'c', 3, 0, 0x10, 'x'}))
	f.Add(legacyFrame([]byte{0xff, 0xff, 0xff}))
	f.Add([]byte{2, 0x21, 0x4c, 0x18, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := DecompressLZ4Legacy(b, 1<<20)
		if err == nil && len(out) > 1<<20 {
			t.Fatalf("output %d over the limit", len(out))
		}
	})
}

func FuzzExtractVmlinux(f *testing.F) {
	hdr := make([]byte, 0x300)
	copy(hdr[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(hdr[0x206:], 0x20f)
	f.Add(hdr)
	f.Fuzz(func(t *testing.T, b []byte) {
		ExtractVmlinux(b)
	})
}
