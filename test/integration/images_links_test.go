package integration

import (
	"archive/tar"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// catSrc is a static cat for the test image.
const catSrc = `package main

import (
	"io"
	"os"
)

func main() {
	for _, p := range os.Args[1:] {
		f, err := os.Open(p)
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		io.Copy(os.Stdout, f)
		f.Close()
	}
}
`

// lowerLinkImage is two layers: a base with /bin/cat and /a/target, and a
// layer whose /b/link is a hard link to /a/target, which only the base
// holds (image-spec allows it; builders make such layers).
func lowerLinkImage(t *testing.T) v1.Image {
	t.Helper()
	base := tarLayer(t, dirEntry("bin/", 0), fileEntry("bin/cat", 0o755, buildStatic(t, catSrc)),
		dirEntry("a/", 0), fileEntry("a/target", 0o644, []byte("the target's content\n")), dirEntry("tmp/", 0))
	top := tarLayer(t, dirEntry("b/", 0),
		tarEntry{hdr: tar.Header{Name: "b/link", Typeflag: tar.TypeLink, Linkname: "a/target"}})
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"PATH=/bin"}}})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, base, top); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestImagePullLowerHardLink pulls an image with a hard link to a file of
// a lower layer with the real CLI and reads the link in a container.
func TestImagePullLowerHardLink(t *testing.T) {
	requireEnv(t)
	reg := newImageRegistry(t)
	ref := reg.push(t, "it/lowerlink:1", lowerLinkImage(t))
	shared.ok(t, "image", "pull", ref)
	t.Cleanup(func() { shared.ak(t, "image", "rm", ref) })
	r := shared.ak(t, "run", "--image", ref, "--", "cat", "/b/link")
	if want := "the target's content\n"; r.code != 0 || r.stdout != want {
		t.Errorf("run cat /b/link: want %q\n%v", want, r)
	}
}

// TestMicroVMImageLowerHardLink reads the same link in a microVM, whose
// disk is built from the image's layers.
func TestMicroVMImageLowerHardLink(t *testing.T) {
	e := newMicroVMEnv(t)
	reg := newImageRegistry(t)
	ref := reg.push(t, "it/lowerlink:1", lowerLinkImage(t))
	e.ok(t, "image", "pull", ref)
	r := e.ak(t, "run", "--backend", "microvm", "--image", ref, "--", "/bin/cat", "/b/link")
	if want := "the target's content\n"; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("run cat /b/link in a microVM: want %q\n%v", want, r)
	}
}

// TestGVisorImageLowerHardLink reads the same link on gVisor.
func TestGVisorImageLowerHardLink(t *testing.T) {
	requireRunsc(t)
	e := newEnv(t)
	reg := newImageRegistry(t)
	ref := reg.push(t, "it/lowerlink:1", lowerLinkImage(t))
	e.ok(t, "image", "pull", ref)
	r := e.ak(t, "run", "--backend", "gvisor", "--image", ref, "--", "/bin/cat", "/b/link")
	if want := "the target's content\n"; r.code != 0 || r.stdout != want {
		t.Errorf("run cat /b/link on gVisor: want %q\n%v", want, r)
	}
}
