package image

import (
	"path"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// FuzzImageMetadata feeds a registry's two metadata documents, the
// manifest and the config, through what a pull does with them before any
// layer is fetched: go-containerregistry parses them, checkManifest and
// parseConfig judge them, imageConfig keeps what sandboxes use. Whatever
// the bytes, nothing panics; a refusal is a classified error (never
// "internal"); an accepted manifest has only unpackable layers, and an
// accepted config's working directory is absolute and clean.
func FuzzImageMetadata(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:`+strings.Repeat("a", 64)+`","size":2},
"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:`+strings.Repeat("b", 64)+`","size":10}]}`),
		[]byte(`{"os":"linux","architecture":"amd64","config":{"Env":["A=b"],"WorkingDir":"rel/../x","ExposedPorts":{"80/tcp":{}}},"rootfs":{"type":"layers","diff_ids":["sha256:`+strings.Repeat("c", 64)+`"]}}`))
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":-1}]}`),
		[]byte(`{"os":"windows","architecture":"amd64"}`))
	f.Add([]byte(`{"layers":[]}`), []byte(`{"created":"not a time"}`))
	want := &v1.Platform{OS: "linux", Architecture: "amd64"}
	f.Fuzz(func(t *testing.T, manifest, config []byte) {
		if m, err := v1.ParseManifest(strings.NewReader(string(manifest))); err == nil {
			if err := checkManifest(m); err != nil {
				if errdefs.Code(err) == "internal" {
					t.Fatalf("an unclassified refusal of a manifest: %v", err)
				}
			} else {
				if len(m.Layers) == 0 || len(m.Layers) > maxLayers {
					t.Fatalf("accepted a manifest of %d layers", len(m.Layers))
				}
				for _, l := range m.Layers {
					switch l.MediaType {
					case types.DockerLayer, types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer, types.DockerUncompressedLayer:
					default:
						t.Fatalf("accepted a layer of media type %q", l.MediaType)
					}
					if l.Size < 0 {
						t.Fatalf("accepted a layer of size %d", l.Size)
					}
				}
			}
		}
		cf, err := parseConfig(config, want)
		if err != nil {
			if errdefs.Code(err) == "internal" {
				t.Fatalf("an unclassified refusal of a config: %v", err)
			}
			return
		}
		c := imageConfig(cf)
		if wd := c.WorkingDir; wd != "" && (!path.IsAbs(wd) || path.Clean(wd) != wd) {
			t.Fatalf("the working directory %q of an accepted config is not absolute and clean", wd)
		}
	})
}
