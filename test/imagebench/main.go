// Command imagebench measures image pulls and sandbox creation (see
// scripts/bench-images.sh, which builds and runs it; not part of CI).
//
// It serves go-containerregistry's registry on loopback holding two images
// made from host directories: "small" (/usr/lib/python3.11) and "large"
// (the small image's layer plus /usr/local/go and /usr/share/doc, about
// ten times the size). Then it times, RUNS times each, median reported:
//
//   - `agentkernel image pull` of each image into an emptied store, against
//     `skopeo copy docker://… oci:DIR` followed by `umoci unpack` of the same
//     image from the same registry into a fresh directory;
//   - sandbox creation (POST /sandboxes with start, answered when the guest
//     agent is up) from each image, with pkg/client.
//
// It writes a Markdown summary to -out. The daemon must be reachable at
// $AGENTKERNEL_HOME's socket; the CLI path is -agentkernel.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

func main() {
	ak := flag.String("agentkernel", "agentkernel", "the agentkernel CLI")
	runs := flag.Int("runs", 5, "timed pulls per tool and image")
	creates := flag.Int("creates", 10, "timed sandbox creations per image")
	out := flag.String("out", "", "write the Markdown summary here (default stdout)")
	work := flag.String("work", os.TempDir(), "scratch directory for skopeo and umoci")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("imagebench: ")

	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	base := dirLayer("/usr/lib/python3.11", "usr/lib/python3.11")
	small := push(host, "bench/small:1", base)
	large := push(host, "bench/large:1", base, dirLayer("/usr/local/go", "usr/local/go"), dirLayer("/usr/share/doc", "usr/share/doc"))

	var rows []string
	for _, img := range []benchImage{small, large} {
		akT := median(*runs, func() time.Duration { return akPull(*ak, img.ref) })
		skT := median(*runs, func() time.Duration { return skopeoUmoci(*work, img.ref) })
		rows = append(rows, fmt.Sprintf("| pull + unpack, %s (%s, %d files, %d layers) | %s | %s | %.2f |",
			img.name, mib(img.size), img.files, img.layers, secs(akT), secs(skT), akT.Seconds()/skT.Seconds()))
	}
	// Leave both images in the store for the create benchmark.
	for _, img := range []benchImage{small, large} {
		run(*ak, "image", "pull", "-q", img.ref)
	}
	c := dial()
	createT := map[string]time.Duration{}
	for _, img := range []benchImage{small, large} {
		createT[img.name] = median(*creates, func() time.Duration { return create(c, img.ref) })
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| measure | agentkernel | skopeo copy + umoci unpack | ratio |\n|---|---|---|---|\n")
	fmt.Fprintln(&b, strings.Join(rows, "\n"))
	fmt.Fprintf(&b, "\n| sandbox create (agent up) | median of %d |\n|---|---|\n", *creates)
	fmt.Fprintf(&b, "| small image (%s) | %s |\n", mib(small.size), ms(createT["small"]))
	fmt.Fprintf(&b, "| large image (%s, %.0fx) | %s |\n", mib(large.size), float64(large.size)/float64(small.size), ms(createT["large"]))
	fmt.Fprintf(&b, "| ratio large/small | %.2f |\n", createT["large"].Seconds()/createT["small"].Seconds())
	for _, img := range []benchImage{small, large} {
		run(*ak, "image", "rm", img.ref)
	}
	run(*ak, "image", "prune")
	if *out == "" {
		fmt.Print(b.String())
		return
	}
	if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		log.Fatal(err)
	}
}

type benchImage struct {
	name, ref     string
	size          int64
	files, layers int
}

type tarLayer struct {
	layer v1.Layer
	size  int64
	files int
}

// dirLayer tars the host directory dir as the layer path prefix.
func dirLayer(dir, prefix string) tarLayer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var size int64
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0 {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(filepath.Join(prefix, rel))
		h.Uname, h.Gname = "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			n, err := io.Copy(tw, f)
			size += n
			files++
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		log.Fatalf("tar %s: %v", dir, err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithCompressedCaching)
	if err != nil {
		log.Fatal(err)
	}
	return tarLayer{layer: l, size: size, files: files}
}

func push(host, repo string, layers ...tarLayer) benchImage {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"PATH=/usr/local/go/bin:/usr/bin:/bin"}}})
	if err != nil {
		log.Fatal(err)
	}
	bi := benchImage{name: strings.TrimSuffix(strings.TrimPrefix(repo, "bench/"), ":1"), ref: host + "/" + repo, layers: len(layers)}
	for _, l := range layers {
		if img, err = mutate.AppendLayers(img, l.layer); err != nil {
			log.Fatal(err)
		}
		bi.size += l.size
		bi.files += l.files
	}
	ref, err := name.ParseReference(bi.ref, name.Insecure)
	if err != nil {
		log.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		log.Fatal(err)
	}
	return bi
}

func run(bin string, args ...string) {
	cmd := exec.Command(bin, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
}

// akPull empties the store of ref, then times `agentkernel image pull`.
func akPull(ak, ref string) time.Duration {
	exec.Command(ak, "image", "rm", ref).Run()
	run(ak, "image", "prune")
	start := time.Now()
	run(ak, "image", "pull", "-q", ref)
	return time.Since(start)
}

// skopeoUmoci times skopeo copy into a fresh OCI layout plus umoci unpack.
func skopeoUmoci(work, ref string) time.Duration {
	dir, err := os.MkdirTemp(work, "skopeo-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	layout, bundle := filepath.Join(dir, "layout"), filepath.Join(dir, "bundle")
	start := time.Now()
	run("skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "oci:"+layout+":img")
	run("umoci", "unpack", "--image", layout+":img", bundle)
	return time.Since(start)
}

func dial() *client.Client {
	l, err := paths.Default()
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(client.WithBaseURL("unix://" + l.Socket()))
	if err != nil {
		log.Fatal(err)
	}
	return c
}

// create times one sandbox creation (started, agent up), then removes it.
func create(c *client.Client, ref string) time.Duration {
	ctx := context.Background()
	start := true
	name := fmt.Sprintf("imgbench-%d", time.Now().UnixNano())
	t0 := time.Now()
	if _, err := c.CreateSandbox(ctx, api.CreateSandboxRequest{Name: name, Image: ref, Start: &start}); err != nil {
		log.Fatalf("create from %s: %v", ref, err)
	}
	d := time.Since(t0)
	if err := c.RemoveSandbox(ctx, name); err != nil {
		log.Fatalf("remove %s: %v", name, err)
	}
	return d
}

func median(n int, f func() time.Duration) time.Duration {
	f() // warm-up, not counted
	ds := make([]time.Duration, n)
	for i := range ds {
		ds[i] = f()
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[n/2]
}

func mib(n int64) string          { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
func ms(d time.Duration) string   { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }
