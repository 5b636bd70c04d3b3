// Package debootstrap builds Debian root filesystems with debootstrap(8),
// for `agentkernel image build --debian SUITE --packages …`.
//
// A build has two steps. The first downloads and verifies the packages
// (debootstrap --make-tarball) into a tarball cached under
// Options.CacheDir, keyed by architecture, suite, mirror and package set,
// and refreshed when older than Options.MaxAge or when asked; the second
// installs them into the target directory (--unpack-tarball), so every
// build is a fresh install even when the download is cached.
//
// Trust: packages come from a Debian mirror and are checked against the
// Debian archive keyring (gpgv); a build without a keyring and gpgv is
// refused rather than run unverified. Installing runs the packages'
// maintainer scripts as root in a chroot of the target, as debootstrap
// always does, so it trusts the archive. debootstrap runs in a private
// mount namespace (its /proc, /sys and /dev mounts vanish with it), in its
// own process group (killed when the context ends), with a clean
// environment. Its host details (resolv.conf, hostname) are removed from
// the result.
//
// A Builder is safe for concurrent use; builds with the same cache key
// share the download through a lock file.
package debootstrap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/agentkernel/agentkernel/pkg/errdefs"
)

// Defaults for Options' zero values.
const (
	DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
	DefaultMirror  = "http://deb.debian.org/debian"
	DefaultMaxAge  = 7 * 24 * time.Hour
	// MaxPackages bounds --packages.
	MaxPackages = 256
	variant     = "minbase"
)

// Options configure a Builder. Zero values take the defaults.
type Options struct {
	// CacheDir holds downloaded package tarballs; "" caches nothing.
	CacheDir string
	// MaxAge is how old a cached download may be before it is fetched
	// again (security updates). Default DefaultMaxAge.
	MaxAge time.Duration
	// Program is debootstrap; default "debootstrap" in PATH.
	Program string
	// Keyring verifies the archive; default DefaultKeyring.
	Keyring string
	// AptDir is where the host's apt sources are read to find its mirror;
	// default /etc/apt.
	AptDir string
	// Arch is the Debian architecture; default the host's.
	Arch string
}

// Request is one build.
type Request struct {
	// Suite is a Debian suite or codename ("bookworm", "stable").
	Suite string
	// Packages are installed on top of the minimal base.
	Packages []string
	// Mirror is the archive URL; "" means the host's apt mirror.
	Mirror string
	// NoCache fetches the packages again even when a fresh download is
	// cached (and replaces it).
	NoCache bool
}

// Progress is one step of a build, for the user to watch.
type Progress struct {
	// Stage is "download", "install" or "finish".
	Stage   string
	Message string
}

// Builder runs builds. Create it with New.
type Builder struct {
	opts Options
}

// New returns a Builder.
func New(opts Options) *Builder {
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Program == "" {
		opts.Program = "debootstrap"
	}
	if opts.Keyring == "" {
		opts.Keyring = DefaultKeyring
	}
	if opts.AptDir == "" {
		opts.AptDir = "/etc/apt"
	}
	if opts.Arch == "" {
		opts.Arch = debianArch(runtime.GOARCH)
	}
	return &Builder{opts: opts}
}

// debianArch maps GOARCH to Debian's architecture names.
func debianArch(goarch string) string {
	switch goarch {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	case "mips64le":
		return "mips64el"
	}
	return goarch
}

var (
	suiteRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{1,31}$`)
	packageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{1,99}$`)
)

// Check validates req and fills in what it leaves to defaults: the mirror
// (the host's), and the package list sorted without duplicates. It does
// not touch the network.
func (b *Builder) Check(req Request) (Request, error) {
	if !suiteRE.MatchString(req.Suite) {
		return req, fmt.Errorf("%w: Debian suite %q: want a codename such as bookworm", errdefs.ErrInvalidArgument, req.Suite)
	}
	if len(req.Packages) > MaxPackages {
		return req, fmt.Errorf("%w: %d packages: at most %d", errdefs.ErrInvalidArgument, len(req.Packages), MaxPackages)
	}
	pkgs := make([]string, 0, len(req.Packages))
	for _, p := range req.Packages {
		if !packageRE.MatchString(p) {
			return req, fmt.Errorf("%w: package name %q: want lowercase letters, digits, '+', '-' or '.'", errdefs.ErrInvalidArgument, p)
		}
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	req.Packages = slices.Compact(pkgs)
	if req.Mirror == "" {
		req.Mirror = HostMirror(b.opts.AptDir)
	}
	if err := checkMirror(req.Mirror); err != nil {
		return req, err
	}
	req.Mirror = strings.TrimRight(req.Mirror, "/")
	return req, nil
}

// checkMirror accepts plain http(s) URLs without credentials (they would
// show in the process list) or anything debootstrap would take for more
// than a URL.
func checkMirror(m string) error {
	u, err := url.Parse(m)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(m, " \t\n,'\"\\") || len(m) > 512 {
		return fmt.Errorf("%w: mirror %q: want an http:// or https:// URL without credentials", errdefs.ErrInvalidArgument, m)
	}
	return nil
}

// Preflight checks that this host can build: root, debootstrap, gpgv and
// the keyring. Each failure says how to fix it.
func (b *Builder) Preflight() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: Debian builds run debootstrap, which needs root; run the daemon as root", errdefs.ErrPermissionDenied)
	}
	if _, err := exec.LookPath(b.opts.Program); err != nil {
		return fmt.Errorf("%w: %s is not installed: apt-get install debootstrap (or run scripts/setup.sh)", errdefs.ErrFailedPrecondition, b.opts.Program)
	}
	if _, err := exec.LookPath("gpgv"); err != nil {
		return fmt.Errorf("%w: gpgv is not installed, so the archive's signature cannot be checked: apt-get install gpgv", errdefs.ErrFailedPrecondition)
	}
	if _, err := os.Stat(b.opts.Keyring); err != nil {
		return fmt.Errorf("%w: the Debian archive keyring %s is missing: apt-get install debian-archive-keyring", errdefs.ErrFailedPrecondition, b.opts.Keyring)
	}
	return nil
}

// cacheKey names a download: everything that changes its content.
func (b *Builder) cacheKey(req Request) string {
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00%s\x00%s\x00%s\x00%s", b.opts.Arch, variant, req.Suite, req.Mirror, strings.Join(req.Packages, ","))
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Build installs a Debian system for req (which Check has accepted) into
// target, which must not exist; its parent must. progress, which may be
// nil, is called from the calling goroutine and one other, never
// concurrently. On failure target may be left partly filled (never
// mounted on); the caller removes it.
func (b *Builder) Build(ctx context.Context, req Request, target string, progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	if err := b.Preflight(); err != nil {
		return err
	}
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("%w: build target %s exists", errdefs.ErrAlreadyExists, target)
	}
	tarball, release, err := b.download(ctx, req, filepath.Dir(target), progress)
	if err != nil {
		return err
	}
	defer release()
	progress(Progress{Stage: "install", Message: fmt.Sprintf("installing %s (%s) with %d extra packages", req.Suite, b.opts.Arch, len(req.Packages))})
	if err := b.run(ctx, "install", progress, b.args(req, "--unpack-tarball="+tarball, target)...); err != nil {
		return fmt.Errorf("installing Debian %s: %w", req.Suite, err)
	}
	progress(Progress{Stage: "finish", Message: "removing host details and package caches"})
	return scrub(target)
}

// args is debootstrap's command line.
func (b *Builder) args(req Request, tarballOpt, target string) []string {
	a := []string{"--variant=" + variant, "--arch=" + b.opts.Arch, "--components=main",
		"--keyring=" + b.opts.Keyring, "--force-check-gpg", tarballOpt}
	if len(req.Packages) > 0 {
		a = append(a, "--include="+strings.Join(req.Packages, ","))
	}
	return append(a, req.Suite, target, req.Mirror)
}

// download returns a package tarball for req: the cached one when it is
// fresh enough, else a new one (cached when there is a cache). release
// frees it (a lock, or a temporary file).
func (b *Builder) download(ctx context.Context, req Request, scratch string, progress func(Progress)) (string, func(), error) {
	tmpTarget := func() (string, func(), error) {
		d, err := os.MkdirTemp(scratch, "download-")
		if err != nil {
			return "", nil, err
		}
		return filepath.Join(d, "target"), func() { os.RemoveAll(d) }, nil
	}
	fetch := func(out string) error {
		target, done, err := tmpTarget()
		if err != nil {
			return err
		}
		defer done()
		progress(Progress{Stage: "download", Message: fmt.Sprintf("fetching %s packages from %s", req.Suite, req.Mirror)})
		if err := b.run(ctx, "download", progress, b.args(req, "--make-tarball="+out, target)...); err != nil {
			os.Remove(out)
			return fmt.Errorf("downloading Debian %s from %s: %w", req.Suite, req.Mirror, err)
		}
		return nil
	}

	if b.opts.CacheDir == "" {
		d, err := os.MkdirTemp(scratch, "packages-")
		if err != nil {
			return "", nil, err
		}
		out := filepath.Join(d, "packages.tgz")
		if err := fetch(out); err != nil {
			os.RemoveAll(d)
			return "", nil, err
		}
		return out, func() { os.RemoveAll(d) }, nil
	}

	if err := os.MkdirAll(b.opts.CacheDir, 0o700); err != nil {
		return "", nil, fmt.Errorf("package cache: %w", err)
	}
	key := b.cacheKey(req)
	unlock, err := lockFile(ctx, filepath.Join(b.opts.CacheDir, key+".lock"))
	if err != nil {
		return "", nil, err
	}
	cached := filepath.Join(b.opts.CacheDir, key+".tgz")
	if fi, err := os.Stat(cached); err == nil && !req.NoCache && time.Since(fi.ModTime()) < b.opts.MaxAge {
		progress(Progress{Stage: "download", Message: "using the packages downloaded " + fi.ModTime().UTC().Format(time.RFC3339)})
		return cached, unlock, nil
	}
	tmp := filepath.Join(b.opts.CacheDir, key+".tgz.tmp")
	os.Remove(tmp)
	if err := fetch(tmp); err != nil {
		unlock()
		return "", nil, err
	}
	if err := os.Rename(tmp, cached); err != nil {
		unlock()
		return "", nil, err
	}
	b.prune(key)
	return cached, unlock, nil
}

// prune removes cached downloads (other than keep) unused for four times
// MaxAge. Errors are ignored: the cache is an optimisation.
func (b *Builder) prune(keep string) {
	entries, _ := os.ReadDir(b.opts.CacheDir)
	for _, e := range entries {
		key, ok := strings.CutSuffix(e.Name(), ".tgz")
		if !ok || key == keep {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 4*b.opts.MaxAge {
			os.Remove(filepath.Join(b.opts.CacheDir, e.Name()))
			os.Remove(filepath.Join(b.opts.CacheDir, key+".lock"))
		}
	}
}

// scrub removes what debootstrap copies from the host or leaves behind:
// resolv.conf and hostname, the downloaded .debs and its log. machine-id,
// when a package made one, is emptied so each sandbox can have its own.
// Every path is checked to be inside root without a symlink on the way.
func scrub(root string) error {
	for _, p := range []string{"etc/resolv.conf", "etc/hostname", "var/log/bootstrap.log"} {
		if err := removeInside(root, p); err != nil {
			return fmt.Errorf("scrubbing the image: %w", err)
		}
	}
	if p, ok := inside(root, "etc/machine-id"); ok {
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			if err := os.Truncate(p, 0); err != nil {
				return fmt.Errorf("scrubbing the image: %w", err)
			}
		}
	}
	// "/." makes inside check archives itself too.
	if dir, ok := inside(root, "var/cache/apt/archives/."); ok {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".deb") && e.Type().IsRegular() {
				os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	return nil
}

// inside returns root/rel when every directory on the way is a real
// directory (no symlink), and whether it is.
func inside(root, rel string) (string, bool) {
	p := root
	parts := strings.Split(rel, "/")
	for _, part := range parts[:len(parts)-1] {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			return "", false
		}
	}
	return filepath.Join(p, parts[len(parts)-1]), true
}

// removeInside removes root/rel (a file or symlink, not followed) if it
// exists inside root.
func removeInside(root, rel string) error {
	p, ok := inside(root, rel)
	if !ok {
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
