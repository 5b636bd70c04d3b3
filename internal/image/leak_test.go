package image

import (
	"archive/tar"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestImportNoLeak feeds mutated archives to importInto and checks that
// neither its pipe goroutines nor the extractor's outlive a failed import.
func TestImportNoLeak(t *testing.T) {
	requireRoot(t)
	seeds := [][]byte{
		makeTar(t, false, entry{hdr: tar.Header{Name: "a/b", Typeflag: tar.TypeReg}, body: "x"}, entry{hdr: tar.Header{Name: "c", Typeflag: tar.TypeReg}, body: "yy"}),
		makeTar(t, true, entry{hdr: tar.Header{Name: "../x", Typeflag: tar.TypeLink, Linkname: "y"}}),
	}
	g0 := runtime.NumGoroutine()
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 500; i++ {
		b := append([]byte(nil), seeds[i%2]...)
		for k := 0; k < 1+rng.Intn(4); k++ {
			b[rng.Intn(len(b))] = byte(rng.Intn(256))
		}
		if i%5 == 0 {
			b = b[:rng.Intn(len(b))]
		}
		top := t.TempDir()
		layer := filepath.Join(top, "layer")
		os.Mkdir(layer, 0o755)
		src := filepath.Join(top, "in.tar")
		os.WriteFile(src, b, 0o600)
		importInto(context.Background(), src, layer, IDShift{UID: 100000, GID: 100000, Size: 65536}, Limits{MaxBytes: 1 << 20, MaxEntries: 1000})
	}
	time.Sleep(100 * time.Millisecond)
	if g := runtime.NumGoroutine(); g > g0+2 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines %d -> %d\n%s", g0, g, buf[:n])
	}
}
