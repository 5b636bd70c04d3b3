package image

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentkernel/agentkernel/internal/telemetry"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// tracer makes the span of each pull.
var tracer = telemetry.Tracer("image")

// Bounds on what a registry may send.
const (
	maxLayers      = 127
	maxConfigBytes = 8 << 20
	defaultJobs    = 4
)

// PullOptions configure one Pull. The zero value pulls for this host's
// platform with the credentials of ~/.docker/config.json.
type PullOptions struct {
	// Insecure lists registries (host or host:port) that may be reached
	// over plain HTTP. Loopback registries always may.
	Insecure []string
	// Keychain finds credentials; nil means authn.DefaultKeychain
	// ($DOCKER_CONFIG or ~/.docker/config.json, with credential helpers).
	Keychain authn.Keychain
	// Platform picks the image of a multi-platform index; nil means
	// linux/GOARCH.
	Platform *v1.Platform
	// Progress, if set, is called as the pull advances. Calls are
	// serialised; Progress must not block for long.
	Progress func(PullEvent)
	// Jobs is how many layers are fetched at once; 0 means 4.
	Jobs int
	// Transport carries the registry requests; nil means
	// remote.DefaultTransport. Plain-HTTP requests to registries not
	// allowed above are refused whatever the transport.
	Transport http.RoundTripper
	// Retry overrides go-containerregistry's retry backoff for network
	// errors (3 tries, 1s then 3s apart); tests shorten it.
	Retry *remote.Backoff
}

// PullEvent reports progress. Layer is the layer's compressed digest, ""
// for the image as a whole.
type PullEvent struct {
	Layer   string `json:"layer,omitempty"`
	Status  string `json:"status"`
	Current int64  `json:"current,omitempty"`
	Total   int64  `json:"total,omitempty"`
}

// Pull statuses, in the order a layer goes through them.
const (
	StatusResolved    = "resolved"    // image: manifest read (Layer "" and Total = layers)
	StatusWaiting     = "waiting"     // layer: queued
	StatusDownloading = "downloading" // layer: Current of Total compressed bytes
	StatusExtracting  = "extracting"  // layer: unpacking a blob already stored
	StatusExists      = "exists"      // layer: already stored and unpacked
	StatusDone        = "done"        // layer stored and unpacked; image: published
)

// pull is the state of one Store.Pull.
type pull struct {
	s    *Store
	ref  name.Reference
	opts PullOptions

	progressMu sync.Mutex
	// created lists the keys this pull added to the store; on failure
	// those no image uses are deleted again.
	createdMu sync.Mutex
	created   []string
}

func (p *pull) report(ev PullEvent) {
	if p.opts.Progress == nil {
		return
	}
	p.progressMu.Lock()
	defer p.progressMu.Unlock()
	p.opts.Progress(ev)
}

func (p *pull) addCreated(key string) {
	p.createdMu.Lock()
	p.created = append(p.created, key)
	p.createdMu.Unlock()
}

// Pull fetches the image ref from its registry into the store and names
// it Familiar(ref) ("python:3.12"). Blobs are verified as they arrive,
// layers already stored are not fetched again, and the image becomes
// visible only once all of it is stored and unpacked. A failed pull leaves
// no image and removes what it added. A name that pointed to another image
// moves; the old image's content stays until Prune.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions) (_ *Image, retErr error) {
	ctx, span := tracer.Start(ctx, "image.pull", trace.WithAttributes(attribute.String("agentkernel.image", ref)))
	defer func() {
		if retErr != nil {
			span.SetStatus(codes.Error, retErr.Error())
		}
		span.End()
	}()
	r, err := ParseReference(ref, opts.Insecure)
	if err != nil {
		return nil, err
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Platform == nil {
		opts.Platform = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	if opts.Jobs <= 0 {
		opts.Jobs = defaultJobs
	}
	if opts.Transport == nil {
		opts.Transport = remote.DefaultTransport
	}
	p := &pull{s: s, ref: r, opts: opts}
	img, err := p.run(ctx)
	if err != nil {
		p.undo()
		if errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device") {
			err = fmt.Errorf("%w (the image store at %s is full; `agentkernel image prune` frees unused layers)", err, s.root)
		}
		return nil, fmt.Errorf("pulling %s: %w", Familiar(r), err)
	}
	return img, nil
}

func (p *pull) run(ctx context.Context) (*Image, error) {
	ropts := []remote.Option{
		remote.WithAuthFromKeychain(p.opts.Keychain),
		remote.WithTransport(httpGuard{base: p.opts.Transport, insecure: p.opts.Insecure}),
		remote.WithPlatform(*p.opts.Platform),
		remote.WithUserAgent("agentkernel"),
	}
	if p.opts.Retry != nil {
		ropts = append(ropts, remote.WithRetryBackoff(*p.opts.Retry))
	}
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, err
	}
	desc, err := puller.Get(ctx, p.ref)
	if err != nil {
		return nil, p.classify(err)
	}
	img, err := desc.Image()
	if err != nil {
		if desc.MediaType.IsIndex() && !isRemoteError(err) {
			return nil, fmt.Errorf("%w: %s has no image for %s: %v", errdefs.ErrNotFound, p.ref.Name(), p.opts.Platform, err)
		}
		return nil, p.classify(err)
	}
	m, err := readManifest(img)
	if err != nil {
		return nil, p.classify(err)
	}
	if m.Config.Size > maxConfigBytes {
		return nil, fmt.Errorf("%w: the image config is %d bytes (at most %d)", errdefs.ErrTooLarge, m.Config.Size, maxConfigBytes)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return nil, p.classify(err)
	}
	cf, err := parseConfig(rawConfig, p.opts.Platform)
	if err != nil {
		return nil, err
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("%w: the manifest lists %d layers, the config %d diff-ids", errdefs.ErrInvalidArgument, len(m.Layers), len(cf.RootFS.DiffIDs))
	}
	rawManifest, _ := img.RawManifest()
	digest, _ := img.Digest()
	p.report(PullEvent{Status: StatusResolved, Total: int64(len(m.Layers))})

	out := &Image{
		Name: Familiar(p.ref), ID: digest.String(), Source: p.ref.Name(),
		Manifest:   &Blob{Digest: digest.String(), Size: int64(len(rawManifest)), MediaType: string(m.MediaType)},
		ConfigBlob: &Blob{Digest: m.Config.Digest.String(), Size: int64(len(rawConfig)), MediaType: string(m.Config.MediaType)},
		Platform:   platformString(cf.OS, cf.Architecture, cf.Variant),
		Config:     imageConfig(cf),
	}
	if out.Manifest.MediaType == "" {
		out.Manifest.MediaType = string(types.OCIManifestSchema1)
	}
	for i, l := range m.Layers {
		out.LayerIDs = append(out.LayerIDs, cf.RootFS.DiffIDs[i].Hex)
		out.LayerBlobs = append(out.LayerBlobs, Blob{Digest: l.Digest.String(), Size: l.Size, MediaType: string(l.MediaType)})
	}
	release := p.s.lease(out.refs())
	defer release()

	if err := p.putBlob(digest, rawManifest); err != nil {
		return nil, err
	}
	if err := p.putBlob(m.Config.Digest, rawConfig); err != nil {
		return nil, err
	}
	sizes, err := p.layers(ctx, img, m.Layers, cf.RootFS.DiffIDs)
	if err != nil {
		return nil, err
	}
	for _, n := range sizes {
		out.Size += n
	}
	linksSize, releaseLinks, err := p.linkLayers(out)
	defer releaseLinks()
	if err != nil {
		return nil, err
	}
	out.Size += linksSize
	for _, id := range out.LayerIDs {
		out.Layers = append(out.Layers, p.s.dir("layers", id))
	}
	out.Created = time.Now().UTC()
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if err := p.s.publishLocked(out); err != nil {
		return nil, err
	}
	p.report(PullEvent{Status: StatusDone})
	return out, nil
}

// readManifest returns img's manifest after checking its layers.
func readManifest(img v1.Image) (*v1.Manifest, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	return m, checkManifest(m)
}

// checkManifest refuses a manifest whose layers this store cannot unpack.
func checkManifest(m *v1.Manifest) error {
	if len(m.Layers) == 0 || len(m.Layers) > maxLayers {
		return fmt.Errorf("%w: the image has %d layers (1 to %d are supported)", errdefs.ErrInvalidArgument, len(m.Layers), maxLayers)
	}
	for _, l := range m.Layers {
		switch l.MediaType {
		case types.DockerLayer, types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer, types.DockerUncompressedLayer:
		case types.DockerForeignLayer, types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer:
			return fmt.Errorf("%w: layer %s is a foreign (non-distributable) layer", errdefs.ErrNotImplemented, l.Digest)
		default:
			return fmt.Errorf("%w: layer %s has media type %q, not an image layer", errdefs.ErrNotImplemented, l.Digest, l.MediaType)
		}
		if l.Size < 0 {
			return fmt.Errorf("%w: layer %s has a negative size", errdefs.ErrInvalidArgument, l.Digest)
		}
	}
	return nil
}

// parseConfig parses the image config and checks that it runs here.
func parseConfig(raw []byte, want *v1.Platform) (*v1.ConfigFile, error) {
	cf, err := v1.ParseConfigFile(strings.NewReader(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%w: bad image config: %v", errdefs.ErrInvalidArgument, err)
	}
	if (cf.OS != "" && cf.OS != want.OS) || (cf.Architecture != "" && cf.Architecture != want.Architecture) {
		return nil, fmt.Errorf("%w: the image is for %s; this host runs %s", errdefs.ErrFailedPrecondition,
			platformString(cf.OS, cf.Architecture, cf.Variant), platformString(want.OS, want.Architecture, want.Variant))
	}
	return cf, nil
}

func platformString(os, arch, variant string) string {
	s := os + "/" + arch
	if variant != "" {
		s += "/" + variant
	}
	return s
}

// imageConfig keeps what sandboxes use of an image config.
func imageConfig(cf *v1.ConfigFile) *Config {
	c := &Config{
		Env: cf.Config.Env, Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd,
		User: cf.Config.User, Labels: cf.Config.Labels, Created: cf.Created.Time,
	}
	if wd := cf.Config.WorkingDir; wd != "" {
		c.WorkingDir = path.Clean("/" + wd) // Docker takes a relative one from /
	}
	for port := range cf.Config.ExposedPorts {
		c.ExposedPorts = append(c.ExposedPorts, port)
	}
	sort.Strings(c.ExposedPorts)
	return c
}

// putBlob stores a small blob already in memory, verifying it.
func (p *pull) putBlob(d v1.Hash, b []byte) error {
	if _, ok := p.s.blobs.Has(d); ok {
		return nil
	}
	if err := p.s.blobs.PutBytes(d, b); err != nil {
		return err
	}
	p.addCreated(blobKey(d.String()))
	return nil
}

// undo removes what a failed pull added and no image uses.
func (p *pull) undo() {
	if len(p.created) == 0 {
		return
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	referenced, err := p.s.referencedLocked("")
	if err != nil {
		return
	}
	mounted, err := mountedLowerDirs()
	if err != nil {
		return
	}
	p.s.collectLocked(p.created, referenced, mounted)
}

func isRemoteError(err error) bool {
	var te interface{ Temporary() bool }
	return errors.As(err, &te)
}
