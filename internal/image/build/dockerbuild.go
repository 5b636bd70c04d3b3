package build

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/internal/image"
	"github.com/agentkernel/agentkernel/internal/image/dockerfile"
	"github.com/agentkernel/agentkernel/internal/netgw/policy"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// maxRunOutputLine bounds one line of RUN output sent as progress.
const maxRunOutputLine = 4096

// dockerBuild is the state of one Dockerfile build; used by one goroutine.
// Each instruction moves the state: config instructions change cfg, RUN,
// COPY and ADD add a layer. key identifies the state (the FROM image's
// layers plus every instruction since, as expanded); a layer step's cache
// key is sha256(key, its text, the content hash of what it copies), and
// the build cache (<home>/buildcache/<key>.json) maps it to the layer.
type dockerBuild struct {
	b        *Builder
	req      api.BuildImageRequest
	progress func(api.BuildProgress)
	ctxDir   string
	work     string             // scratch directory under b.dir
	net      *api.NetworkPolicy // every RUN step's egress (see stepNetwork)

	from     *image.Image
	layers   []image.NewLayer
	releases []func()
	cfg      image.Config
	key      string
	args     map[string]string // ARG values in effect
	declared map[string]bool
	preFrom  map[string]string // ARG values declared before FROM
	steps    int               // sandboxes run
}

// stepNetwork is the egress policy of a build's step sandboxes: nothing by
// default (a restrictive policy that names nothing), or exactly the names
// and presets the build asked for. A build may not widen it to a profile
// or to address ranges.
func stepNetwork(want *api.NetworkPolicy) (*api.NetworkPolicy, error) {
	off := &api.NetworkPolicy{Profile: "restrictive"}
	if want == nil {
		return off, nil
	}
	if want.Profile != "" && want.Profile != "restrictive" {
		return nil, fmt.Errorf("%w: a build's network is what it names (allow, presets); profile %q is not accepted", errdefs.ErrInvalidArgument, want.Profile)
	}
	if len(want.AllowCIDRs) > 0 {
		return nil, fmt.Errorf("%w: a build reaches registries by name; allow_cidrs is not accepted", errdefs.ErrInvalidArgument)
	}
	for _, p := range want.Presets {
		if _, err := policy.Preset(p); err != nil {
			return nil, err
		}
	}
	off.Allow, off.Block, off.Presets = slices.Clone(want.Allow), slices.Clone(want.Block), slices.Clone(want.Presets)
	return off, nil
}

// buildDockerfile runs a Dockerfile build (see api.DockerfileSource).
func (b *Builder) buildDockerfile(ctx context.Context, req api.BuildImageRequest, progress func(api.BuildProgress)) (api.ImageInfo, error) {
	src := req.Dockerfile
	if err := image.ValidateName(req.Name); err != nil {
		return api.ImageInfo{}, err
	}
	if b.sbx == nil {
		return api.ImageInfo{}, fmt.Errorf("%w: this daemon cannot run build steps", errdefs.ErrNotImplemented)
	}
	stepNet, err := stepNetwork(req.Network)
	if err != nil {
		return api.ImageInfo{}, err
	}
	if !filepath.IsAbs(src.Context) {
		return api.ImageInfo{}, fmt.Errorf("%w: the build context %q must be an absolute path", errdefs.ErrInvalidArgument, src.Context)
	}
	if fi, err := os.Stat(src.Context); err != nil || !fi.IsDir() {
		return api.ImageInfo{}, fmt.Errorf("%w: the build context %s is not a directory", errdefs.ErrNotFound, src.Context)
	}
	df := src.Dockerfile
	if df == "" {
		df = "Dockerfile"
	}
	if !filepath.IsAbs(df) {
		df = filepath.Join(src.Context, df)
	}
	text, err := readLimited(df, dockerfile.MaxBytes)
	if err != nil {
		return api.ImageInfo{}, err
	}
	ins, err := dockerfile.Parse(text)
	if err != nil {
		return api.ImageInfo{}, err
	}

	ctx, cancel := context.WithTimeout(ctx, maxBuildTime)
	defer cancel()
	if err := b.acquire(ctx, progress); err != nil {
		return api.ImageInfo{}, err
	}
	defer func() { <-b.sem }()
	b.sweep()
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return api.ImageInfo{}, err
	}
	work, err := os.MkdirTemp(b.dir, "dockerfile-")
	if err != nil {
		return api.ImageInfo{}, err
	}
	defer b.remove(work)

	d := &dockerBuild{b: b, req: req, progress: progress, ctxDir: src.Context, work: work, net: stepNet,
		args: map[string]string{}, declared: map[string]bool{}}
	defer func() {
		for _, r := range d.releases {
			r()
		}
	}()
	start := time.Now()
	for i, in := range ins {
		if err := ctx.Err(); err != nil {
			return api.ImageInfo{}, err
		}
		if err := d.step(ctx, fmt.Sprintf("[%d/%d]", i+1, len(ins)), in); err != nil {
			if ctx.Err() != nil {
				return api.ImageInfo{}, ctx.Err()
			}
			return api.ImageInfo{}, fmt.Errorf("Dockerfile line %d (%s): %w", in.Line, in.Cmd, err)
		}
	}
	progress(api.BuildProgress{Stage: api.BuildStageImport, Message: "publishing " + req.Name})
	img, err := b.images.Compose(req.Name, d.from, d.layers, &d.cfg, "dockerfile:"+df, true)
	if err != nil {
		return api.ImageInfo{}, err
	}
	b.log.Info("built an image from a Dockerfile", "image", img.Name, "steps", len(ins), "sandboxes", d.steps,
		"duration", time.Since(start).Round(time.Millisecond))
	return imageInfo(img), nil
}

func readLimited(p string, max int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%w: Dockerfile %s: %v", errdefs.ErrNotFound, p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: the Dockerfile is larger than %d bytes", errdefs.ErrTooLarge, max)
	}
	return b, nil
}

// lookup gives ENV values, then ARG values, for expansion.
func (d *dockerBuild) lookup(name string) (string, bool) {
	for i := len(d.cfg.Env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(d.cfg.Env[i], "="); ok && k == name {
			return v, true
		}
	}
	v, ok := d.args[name]
	return v, ok
}

func (d *dockerBuild) words(in dockerfile.Instruction) ([]string, error) {
	s, err := dockerfile.Expand(in.Rest, d.lookup)
	if err != nil {
		return nil, err
	}
	return dockerfile.Words(s)
}

func (d *dockerBuild) advance(text string) {
	sum := sha256.Sum256([]byte(d.key + "\n" + text))
	d.key = hex.EncodeToString(sum[:])
}

func (d *dockerBuild) report(stage, label string, in dockerfile.Instruction) {
	msg := label + " " + in.Original
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	d.progress(api.BuildProgress{Stage: stage, Message: msg})
}

func (d *dockerBuild) step(ctx context.Context, label string, in dockerfile.Instruction) error {
	if in.Cmd != "FROM" && in.Cmd != "ARG" && d.from == nil {
		return fmt.Errorf("%w: no FROM yet", errdefs.ErrInvalidArgument)
	}
	switch in.Cmd {
	case "FROM":
		return d.fromStep(label, in)
	case "RUN", "COPY", "ADD":
		return d.layerStep(ctx, label, in)
	}
	words, err := d.words(in)
	if err != nil {
		return fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
	}
	c := &d.cfg
	switch in.Cmd {
	case "ARG":
		for _, w := range words {
			k, v, hasDefault := strings.Cut(w, "=")
			if v0, ok := d.preFrom[k]; ok && !hasDefault && d.from != nil {
				v, hasDefault = v0, true
			}
			if given, ok := d.req.Dockerfile.BuildArgs[k]; ok {
				v, hasDefault = given, true
			}
			d.declared[k] = true
			if hasDefault {
				d.args[k] = v
			}
		}
	case "ENV":
		pairs, err := keyValues(words)
		if err != nil {
			return err
		}
		for _, kv := range pairs {
			c.Env = setEnv(c.Env, kv[0], kv[1])
		}
	case "LABEL":
		pairs, err := keyValues(words)
		if err != nil {
			return err
		}
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for _, kv := range pairs {
			c.Labels[kv[0]] = kv[1]
		}
	case "WORKDIR":
		if len(words) != 1 {
			return fmt.Errorf("%w: WORKDIR takes one path", errdefs.ErrInvalidArgument)
		}
		c.WorkingDir = path.Join("/", c.WorkingDir, words[0])
		if path.IsAbs(words[0]) {
			c.WorkingDir = path.Clean(words[0])
		}
	case "USER":
		if len(words) != 1 {
			return fmt.Errorf("%w: USER takes one user[:group]", errdefs.ErrInvalidArgument)
		}
		c.User = words[0]
	case "EXPOSE":
		for _, w := range words {
			p := w
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			if n, err := strconv.ParseUint(strings.Split(p, "/")[0], 10, 16); err != nil || n == 0 {
				return fmt.Errorf("%w: EXPOSE %q is not a port", errdefs.ErrInvalidArgument, w)
			}
			if !slices.Contains(c.ExposedPorts, p) {
				c.ExposedPorts = append(c.ExposedPorts, p)
			}
		}
	case "CMD", "ENTRYPOINT":
		argv := in.Args
		if !in.JSON {
			argv = []string{"/bin/sh", "-c", in.Rest}
		}
		if in.Cmd == "CMD" {
			c.Cmd = argv
		} else {
			c.Entrypoint, c.Cmd = argv, nil // Docker: ENTRYPOINT resets CMD
		}
	default:
		return fmt.Errorf("%w: unsupported instruction %s", errdefs.ErrNotImplemented, in.Cmd)
	}
	text, _ := json.Marshal(struct {
		Cmd   string
		Words []string
		Args  []string
	}{in.Cmd, words, in.Args})
	d.advance(string(text))
	d.report(api.BuildStageConfig, label, in)
	return nil
}

func (d *dockerBuild) fromStep(label string, in dockerfile.Instruction) error {
	s, err := dockerfile.Expand(in.Args[0], func(k string) (string, bool) { v, ok := d.args[k]; return v, ok })
	if err != nil {
		return fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
	}
	if s == "scratch" {
		return fmt.Errorf("%w: FROM scratch is not supported (import a directory as an image and build FROM it)", errdefs.ErrNotImplemented)
	}
	img, err := d.b.images.Get(s)
	if err != nil {
		return err
	}
	if img.Host {
		return fmt.Errorf("%w: FROM host: the host image has no layers to build on; pull, import or build an image first", errdefs.ErrFailedPrecondition)
	}
	d.from = img
	if img.Config != nil {
		d.cfg = *img.Config
		d.cfg.Env = slices.Clone(img.Config.Env)
		d.cfg.Labels = nil
		if img.Config.Labels != nil {
			d.cfg.Labels = map[string]string{}
			for k, v := range img.Config.Labels {
				d.cfg.Labels[k] = v
			}
		}
		d.cfg.ExposedPorts = slices.Clone(img.Config.ExposedPorts)
	}
	d.cfg.Created = time.Now().UTC()
	d.key = ""
	d.advance("FROM " + strings.Join(img.LayerIDs, ","))
	// ARGs before FROM serve FROM only; an ARG after it without a value
	// takes their value.
	d.preFrom, d.args, d.declared = d.args, map[string]string{}, map[string]bool{}
	d.report(api.BuildStageConfig, label, in)
	return nil
}

// keyValues reads ENV and LABEL arguments: k=v pairs, or the old "k v…"
// form with one key.
func keyValues(words []string) ([][2]string, error) {
	if len(words) == 0 {
		return nil, fmt.Errorf("%w: no key=value", errdefs.ErrInvalidArgument)
	}
	if !strings.Contains(words[0], "=") {
		if len(words) < 2 {
			return nil, fmt.Errorf("%w: %q has no value", errdefs.ErrInvalidArgument, words[0])
		}
		return [][2]string{{words[0], strings.Join(words[1:], " ")}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: %q is not key=value", errdefs.ErrInvalidArgument, w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func setEnv(env []string, k, v string) []string {
	out := slices.DeleteFunc(slices.Clone(env), func(e string) bool { return strings.HasPrefix(e, k+"=") })
	return append(out, k+"="+v)
}

// cacheEntry is one file of the build cache.
type cacheEntry struct {
	Layer image.NewLayer `json:"layer"`
}

func (d *dockerBuild) cachePath(key string) string {
	return filepath.Join(d.b.cache, key+".json")
}

// layerStep runs RUN, COPY or ADD, or takes its layer from the cache.
func (d *dockerBuild) layerStep(ctx context.Context, label string, in dockerfile.Instruction) error {
	var text string
	var plan *copyPlan
	switch in.Cmd {
	case "RUN":
		argv := in.Args
		if !in.JSON {
			argv = []string{"/bin/sh", "-c", in.Rest}
		}
		b, _ := json.Marshal(struct {
			Argv []string
			Args map[string]string
		}{argv, d.args})
		text = "RUN " + string(b)
	default:
		p, err := d.planCopy(in)
		if err != nil {
			return err
		}
		plan = &p
		text = fmt.Sprintf("%s %s %s", in.Cmd, p.Dir, p.Hash)
	}
	sum := sha256.Sum256([]byte(d.key + "\n" + text))
	key := hex.EncodeToString(sum[:])
	if l, ok := d.cached(key); ok {
		d.layers = append(d.layers, l)
		d.key = key
		d.report(api.BuildStageCached, label, in)
		return nil
	}
	d.report(api.BuildStageStep, label, in)
	l, release, err := d.runStep(ctx, in, plan)
	if err != nil {
		return err
	}
	d.releases = append(d.releases, release)
	d.layers = append(d.layers, l)
	d.key = key
	if err := os.MkdirAll(filepath.Dir(d.cachePath(key)), 0o700); err == nil {
		if b, err := json.Marshal(cacheEntry{Layer: l}); err == nil {
			os.WriteFile(d.cachePath(key), b, 0o600)
		}
	}
	return nil
}

// cached returns the layer the cache holds for key, if it is still
// stored; a hit is leased until the build ends.
func (d *dockerBuild) cached(key string) (image.NewLayer, bool) {
	if d.req.NoCache {
		return image.NewLayer{}, false
	}
	b, err := readLimited(d.cachePath(key), 64<<10)
	if err != nil {
		return image.NewLayer{}, false
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil || !d.b.images.HasLayer(e.Layer.ID) {
		return image.NewLayer{}, false
	}
	return e.Layer, true
}

func (d *dockerBuild) planCopy(in dockerfile.Instruction) (copyPlan, error) {
	words := in.Args
	if !in.JSON {
		var err error
		if words, err = d.words(in); err != nil {
			return copyPlan{}, fmt.Errorf("%w: %v", errdefs.ErrInvalidArgument, err)
		}
	}
	if len(words) < 2 {
		return copyPlan{}, fmt.Errorf("%w: %s needs a source and a destination", errdefs.ErrInvalidArgument, in.Cmd)
	}
	srcs, dest := words[:len(words)-1], words[len(words)-1]
	uid, gid, err := parseChown(in.Flags["chown"])
	if err != nil {
		return copyPlan{}, err
	}
	mode := int64(-1)
	if m, ok := in.Flags["chmod"]; ok {
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil || v > 0o7777 {
			return copyPlan{}, fmt.Errorf("%w: --chmod=%s must be octal", errdefs.ErrNotImplemented, m)
		}
		mode = int64(v)
	}
	if in.Cmd == "ADD" {
		for _, s := range srcs {
			if strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
				return copyPlan{}, fmt.Errorf("%w: ADD of a URL (%s) is not supported: only files of the build context", errdefs.ErrNotImplemented, s)
			}
			if isArchive(d.ctxDir, s) {
				return copyPlan{}, fmt.Errorf("%w: ADD of an archive (%s), which ADD would extract, is not supported; COPY it and RUN tar", errdefs.ErrNotImplemented, s)
			}
		}
	}
	tarPath := filepath.Join(d.work, "copy-"+randomHex(8)+".tar")
	return planCopy(d.ctxDir, srcs, dest, d.cfg.WorkingDir, uid, gid, mode, tarPath)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
